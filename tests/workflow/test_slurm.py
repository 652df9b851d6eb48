"""The tiny test config through a real SLURM cluster (`--executor slurm`).

tests/slurm/start-cluster.sh installs Debian's slurmctld, slurmd, slurm-client
and munge and starts a one-node cluster on loopback with fake GPUs as GRES, so
the model rules' `gpu: 1` requests are scheduled for real. Needs root and apt;
skipped, with the reason, elsewhere. One model job is cancelled (scancel) while
it runs: the profile's retries must resubmit it and the run must complete with
outputs identical to the local run's.

The run starts from the local run's prepared model, dataset shards, answers
and labels (time: two fewer levels of model jobs; generate and label jobs ask
for the same GPU resources as the extraction jobs submitted here, and the kill
test already runs the whole pipeline a second time).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from helpers import CLUSTER_LEFT_RUNNING, REPO, STOP_CLUSTER, planned_jobs, snakemake, snakemake_command

pytestmark = pytest.mark.slurm

START = REPO / "tests" / "slurm" / "start-cluster.sh"
JOBCOMP_LOG = Path("/var/log/slurm/jobcomp.log")
RESULTS = Path("results") / "SmolLM2-135M-Instruct" / "builtin"
KILLED_RULE = "extract_activations"
# Submitted to the cluster; the rest are the Snakefile's localrules, or copied
# from the local run (COPIED below).
CLUSTER_RULES = {
    "extract_activations": 2,
    # probes_train_probes: the one group job of every train_probes job
    "probes_train_probes": 1, "compare_detectors": 1, "generalise_datasets": 1, "generalise_domains": 1,
}
COPIED = ["resources", "results/datasets/builtin", *(str(RESULTS / d) for d in ("generations", "labels"))]
SAME_AS_LOCAL = [
    "positions/000.tsv", "positions/001.tsv", "probes/split.tsv", "probes/selection.json", "auc.tsv",
    "generalisation_domains.tsv",
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("SLURM test needs root: it installs and starts slurmctld/slurmd (tests/slurm/start-cluster.sh)")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM test needs Debian's slurm packages or apt-get to install them")
    started = subprocess.run([str(START)], capture_output=True, text=True, timeout=900)
    if started.returncode == 2:
        pytest.skip(started.stderr.strip())
    assert started.returncode == 0, started.stdout + started.stderr
    yield
    if "PYTEST_XDIST_WORKER" in os.environ:
        # Other workers may still start Snakemake, whose SLURM plugin asks the controller for
        # its config at import and, with the packages installed and no controller, waits 9 s
        # for the answer: the xdist controller stops the cluster when the session ends.
        (tmp_path_factory.getbasetemp().parent / CLUSTER_LEFT_RUNNING).touch()
    else:
        subprocess.run([str(STOP_CLUSTER)], capture_output=True, text=True, timeout=120)


def running_job(rule: str) -> str | None:
    """The SLURM id of a running job of ``rule`` (the plugin puts the rule in the comment)."""
    out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        job_id, _, comment = line.partition(" ")
        if comment.startswith(f"rule_{rule}_"):
            return job_id
    return None


def jobcomp_states() -> dict[str, str]:
    """SLURM job id -> final state, from the cluster's job-completion log."""
    text = JOBCOMP_LOG.read_text() if JOBCOMP_LOG.exists() else ""
    return dict(re.findall(r"JobId=(\d+) .*?JobState=(\S+)", text))


def submissions(log: str) -> dict[str, list[str]]:
    """Rule (or group) -> SLURM job ids, from Snakemake's submission lines."""
    found: dict[str, list[str]] = {}
    for job_id, kind in re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/logs/slurm/(?:rule|group)_(\w+?)/", log):
        found.setdefault(kind, []).append(job_id)
    return found


@pytest.fixture(scope="module")
def slurm_run(cluster, workdir, tmp_path_factory):
    wd = tmp_path_factory.mktemp("slurm")
    # The local run's config without P(True) and resampling (model jobs fewer: time), which
    # changes none of the outputs compared below.
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config.setdefault("detectors", {})["p_true"] = False
    config.setdefault("resampling", {})["n"] = 0
    (wd / "config.yaml").write_text(yaml.safe_dump(config))
    for path in COPIED:  # copies keep their times: nothing downstream looks older than its input
        shutil.copytree(workdir / path, wd / path, symlinks=True)
    cmd = snakemake_command(wd, wd / "config.yaml", "--slurm-init-seconds-before-status-checks", "2",
                            profile="slurm")  # the first look at a job comes sooner
    started = time.monotonic()
    log_path = wd / "snakemake.out"
    with log_path.open("w") as log:
        run = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        killed = None
        while run.poll() is None and time.monotonic() - started < 900:
            if killed is None and (job := running_job(KILLED_RULE)):
                time.sleep(1.0)  # let it get going, then kill it mid-run
                subprocess.run(["scancel", job], check=True)
                killed = job
            time.sleep(0.5)
        if run.poll() is None:
            run.kill()
        code = run.wait()
    output = log_path.read_text()
    assert code == 0, output[-6000:]
    return {"dir": wd, "log": output, "killed": killed, "seconds": time.monotonic() - started}


def test_jobs_went_through_the_cluster(slurm_run):
    submitted = submissions(slurm_run["log"])
    counts = {kind: len(ids) for kind, ids in submitted.items()}
    retried = dict(CLUSTER_RULES, **{KILLED_RULE: CLUSTER_RULES[KILLED_RULE] + 1})
    assert counts == retried, counts
    states = jobcomp_states()
    for kind, ids in submitted.items():
        for job_id in ids:
            expected = "CANCELLED" if job_id == slurm_run["killed"] else "COMPLETED"
            assert states.get(job_id) == expected, (kind, job_id, states.get(job_id))


def test_a_cancelled_job_is_retried_and_the_run_completes(slurm_run):
    assert slurm_run["killed"] is not None, "no extract_activations job was seen running"
    assert slurm_run["killed"] in submissions(slurm_run["log"])[KILLED_RULE]
    for name in ("auc.tsv", "heatmap.png", "detectors.tsv"):
        assert (slurm_run["dir"] / RESULTS / name).stat().st_size > 0


@pytest.mark.parametrize("name", SAME_AS_LOCAL)
def test_outputs_match_the_local_run(slurm_run, workdir, name):
    assert (slurm_run["dir"] / RESULTS / name).read_bytes() == (workdir / RESULTS / name).read_bytes()


def test_nothing_left_to_do_after_the_cluster_run(slurm_run):
    dry = snakemake(slurm_run["dir"], slurm_run["dir"] / "config.yaml", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert planned_jobs(dry.stdout + dry.stderr) == {}
