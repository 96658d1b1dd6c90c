# ae_lab: make setup, then make train / make test. Every target uses the project's .venv.
PY ?= .venv/bin/python
# torch and torchvision builds; on machines with a local wheel cache pip takes them from disk
TORCH ?= torch==2.14.1 torchvision==0.29.1
# the project's machines keep MNIST in ../shared/data; elsewhere ae_lab uses ./data (or your setting)
ifneq ($(wildcard ../shared/data/MNIST),)
export AE_LAB_DATA_DIR ?= $(abspath ../shared/data)
endif
# make setup records that folder in the venv, where ae_lab reads data.root's default when
# AE_LAB_DATA_DIR is not set (ae_lab/data/root.py): .venv/bin/python -m ae_lab then finds it too
DATA_RECORD := .venv/ae_lab-data-dir

SRC := $(wildcard ae_lab hydra_plugins tests scripts)

.PHONY: setup train test test-fast lint format bench bench-threads results results-page \
	results-likelihood results-novelty tensorboard clean

setup: .venv/.installed  ## create .venv with ae_lab and everything it needs; record the data folder
ifneq ($(AE_LAB_DATA_DIR),)
	@echo '$(abspath $(AE_LAB_DATA_DIR))' > $(DATA_RECORD)
	@echo 'ae_lab reads its data from $(abspath $(AE_LAB_DATA_DIR)) (recorded in $(DATA_RECORD))'
else
	@rm -f $(DATA_RECORD)
endif

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

train: setup  ## the default run: dense AE, latent 32, beside PCA, then test
	$(PY) -m ae_lab

# one pytest worker per core (pytest-xdist; a third worker on two cores measured slower); a test
# module stays on one worker (loadscope), so its module-scoped runs are made once, and modules are
# handed out in the order tests/conftest.py sorts them (the long integration modules first), not
# by their number of tests, so that neither worker ends waiting on the other's last long module
TEST_WORKERS ?= auto
test: setup  ## the suite CI runs: unit tests and integration tests (the real MNIST, subprocesses)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations=10

# tests/conftest.py fails a test without the integration marker that does any of these
test-fast: setup  ## unit tests only: synthetic data, offline, no entrypoint subprocess, no real MNIST
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not integration"

lint: setup
	$(PY) -m ruff check $(SRC)
	$(PY) -m ruff format --check $(SRC)

format: setup
	$(PY) -m ruff check --fix $(SRC)
	$(PY) -m ruff format $(SRC)

bench: setup  ## speed figures into docs/benchmarks.md (not a test)
	$(PY) scripts/bench.py $(BENCH_ARGS)

bench-threads: setup  ## epoch times by thread count, idle and beside a busy core, into docs/benchmarks.md
	$(PY) scripts/threads_bench.py $(BENCH_ARGS)

# the reference reports (conf/experiment/report_<name>.yaml), each over 3 seeds, one report after
# the other with two jobs at a time (Hydra's joblib launcher, one thread each; each preset lists
# its jobs longest first, so neither core idles behind one long job at the end); then
# docs/results.md and docs/figures (a preset not named here is listed missing). README.md,
# "Results", gives the time budget.
REPORTS ?= course auth
RESULTS_DIR ?= multirun/results
RESULTS_JOBS ?= 2
REPORT_ARGS := threads=1 trainer.enable_progress_bar=false hydra/launcher=parallel \
	hydra.launcher.n_jobs=$(RESULTS_JOBS)
results: setup  ## reproduce the reference reports over 3 seeds (34 min on 2 quiet cores) and regenerate docs/results.md
	$(MAKE) $(addprefix results-,$(REPORTS))
	$(MAKE) results-page

# the page also shows the likelihood benchmark and the novelty study wherever their sweeps are
# (make results-likelihood, make results-novelty)
PAGE_SWEEPS := $(addprefix $(RESULTS_DIR)/,$(REPORTS))
PAGE_SWEEPS += $(filter-out $(PAGE_SWEEPS),$(wildcard $(RESULTS_DIR)/likelihood))
PAGE_SWEEPS += $(filter-out $(PAGE_SWEEPS),$(wildcard $(RESULTS_DIR)/novelty))
PAGE_SWEEPS += $(filter-out $(PAGE_SWEEPS),$(wildcard $(RESULTS_DIR)/novelty_bakeoff))
results-page: setup  ## regenerate docs/results.md and docs/figures from the sweeps already in RESULTS_DIR (no training)
	$(PY) -m scripts.results $(PAGE_SWEEPS)

# the likelihood benchmark (conf/experiment/likelihood.yaml: 5 models x 3 seeds, NLL at K=5000),
# two jobs at a time, then the results page with its section; README.md, "The likelihood
# benchmark", gives its cost and the shorter variant (LIKELIHOOD_ARGS=...)
LIKELIHOOD_ARGS ?=
results-likelihood: setup  ## the likelihood benchmark over 3 seeds (hours; README) and its section of docs/results.md
	$(PY) -m ae_lab experiment=likelihood $(REPORT_ARGS) $(LIKELIHOOD_ARGS) \
		hydra.sweep.dir=$(RESULTS_DIR)/likelihood
	$(MAKE) results-page

# the novelty study (conf/experiment/novelty.yaml: 3 models x 10 digits left out, 2 epochs) and
# ae_bakeoff's protocol point (novelty_bakeoff.yaml: digit 1, latent 2, 3 seeds), then the page
NOVELTY_ARGS ?=
results-novelty: setup  ## the novelty study and ae_bakeoff's point (12 min on 2 cores; README) and their sections of docs/results.md
	$(PY) -m ae_lab experiment=novelty $(REPORT_ARGS) $(NOVELTY_ARGS) \
		hydra.sweep.dir=$(RESULTS_DIR)/novelty
	$(PY) -m ae_lab experiment=novelty_bakeoff $(REPORT_ARGS) $(NOVELTY_ARGS) \
		hydra.sweep.dir=$(RESULTS_DIR)/novelty_bakeoff
	$(MAKE) results-page

results-%: setup
	$(PY) -m ae_lab experiment=report_$* $(REPORT_ARGS) hydra.sweep.dir=$(RESULTS_DIR)/$*

tensorboard: setup  ## every run and sweep under outputs/ and multirun/
	$(PY) -m tensorboard.main --logdir . --bind_all

clean:
	rm -rf outputs multirun lightning_logs .pytest_cache
