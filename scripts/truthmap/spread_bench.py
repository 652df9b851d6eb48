"""What the spread across seeded splits costs the probe stage, measured on a finished run.

``python -m truthmap.spread_bench results/<model>/<dataset> [--layers 0 15 29] [--repeats 3] [--site residual]``
runs the chosen layers the way the train_probes jobs do, once with the primary
split only (``probe.split_seeds: 1``) and once with the default ``split_seeds``,
alternating the two so that both see the same machine load. Each run is a
fresh process, like a job: the interpreter starts, imports the library, reads
the layer, fits and scores every cell and writes its results. It prints the
median seconds per layer of each, for the whole process (what the stage costs)
and for the fitting and scoring alone, and their ratios. Like the rule's jobs,
it runs on one thread (numerical libraries included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_job(run: Path, layer: int, split_seeds: int, site: str, out: Path) -> None:
    """One probe job's work: every cell of ``layer`` at ``site``; prints the fitting seconds."""
    start = time.perf_counter()
    from threadpoolctl import threadpool_limits

    from truthmap.files import read_tsv, write_json
    from truthmap.h5io import read_meta
    from truthmap.probes import train_layer
    from truthmap.settings import ProbeSettings, SplitSettings

    threadpool_limits(1)
    shards = sorted(map(str, (run / "activations").glob("*.h5")))
    timings: dict[str, float] = {}
    results = train_layer(read_tsv(run / "probes" / "split.tsv"), shards, layer, read_meta(shards[0]).tokens,
                          ProbeSettings(split_seeds=split_seeds), timings=timings, split=SplitSettings(), site=site)
    for result in results:
        write_json(out / f"{result.token}.json", result.to_dict())
    print(json.dumps({"evaluate_s": timings["evaluate_s"], "in_process_s": time.perf_counter() - start}))


def time_job(run: Path, layer: int, split_seeds: int, site: str) -> tuple[float, float]:
    """(whole-process seconds, fitting and scoring seconds) of one job in a fresh interpreter."""
    scripts = str(Path(__file__).resolve().parents[1])  # where the truthmap package lives
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [scripts, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "truthmap.spread_bench", str(run), "--job", str(layer),
                               str(split_seeds), site, out], capture_output=True, text=True, check=True, env=env)
        wall = time.perf_counter() - start
    return wall, json.loads(done.stdout.splitlines()[-1])["evaluate_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="results/<model>/<dataset> of a finished run")
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 15, 29])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--site", default="residual")
    parser.add_argument("--job", nargs=4, metavar=("LAYER", "SPLIT_SEEDS", "SITE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        layer, seeds, site, out = args.job
        one_job(args.run, int(layer), int(seeds), site, Path(out))
        return 0
    from truthmap.settings import ProbeSettings

    configs = {"primary split only": 1, f"{ProbeSettings().split_seeds} seeded splits": ProbeSettings().split_seeds}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in configs}
    for _ in range(args.repeats):
        for layer in args.layers:
            for name, seeds in configs.items():
                times[name].append(time_job(args.run, layer, seeds, args.site))
    medians = {name: [statistics.median(t[i] for t in values) for i in (0, 1)] for name, values in times.items()}
    for name, (wall, fit) in medians.items():
        print(f"{name:>22}: {wall:6.2f} s per job, {fit:6.2f} s of it fitting and scoring "
              f"(medians of {len(times[name])})")
    (base_wall, base_fit), (spread_wall, spread_fit) = medians.values()
    print(f"{'ratio':>22}: {spread_wall / base_wall:6.2f}x per job (the stage), {spread_fit / base_fit:6.2f}x "
          "fitting and scoring alone")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
