# make reproduce   : set up .venv (first time), run the profile this machine affords, build results/report.html.
#                    An NVIDIA GPU (`nvidia-smi -L` lists one): JAX's CUDA build and config/paper.yaml, the
#                    paper's whole grid; the CUDA 13 build (`cuda13` extra) where the driver supports CUDA 13
#                    (the header of `nvidia-smi`), else the CUDA 12 build (`cuda12` extra); otherwise the CPU
#                    build and the quick profile config/config.yaml. The first line printed says which and why
#                    (tools/choose_device.sh). Overrides: DEVICE=cpu|cuda, CUDA=12|13, CONFIG=... (wins over the
#                    default profile),
#                    SMK_ARGS="--config 'archs=[mlp]'" (passed to Snakemake: a subset).
#                    Before training it prints the plan: jobs per rule and the estimated wall time on this machine
#                    (python -m bmrsparse.workflow.plan, from a short timing of each network's step on this device, cached
#                    per device and library version; PLAN=0 skips it). When the estimate is over one hour and make
#                    runs on a terminal, it asks whether to go on (tools/confirm_cost.py); YES=1, or no terminal,
#                    goes on without asking.
# make plan-choice : print that choice and the values make uses; installs and runs nothing
# make plan        : print the plan and its estimate without training (sets up .venv first)
# make test        : set up .venv with the CPU build (first time), run the test suite
# make test-newest : set up .venv-newest (a Python >= 3.12: tools/find_python.sh, or PYTHON_NEWEST=...) from
#                    requirements/newest.lock (the newest JAX pyproject.toml allows) and run the tests that a new
#                    JAX can break there: tests/core/test_rng.py, tests/tooling/test_newest_jax.py
# make dryrun-paper: show the jobs of the paper's full grid without running them
# make unlock      : remove the lock a killed Snakemake left, once the run that held it is provably gone
#                    (tools/unlock_stale.py; make reproduce and make report run Snakemake under its --run, which
#                    records the run's host, pid and start time)
# make install-cuda: set up .venv with JAX's CUDA build (CUDA=12|13; unset: by the driver, 12 without one)
# make lock        : regenerate requirements/{cpu,cuda12,cuda13}.lock from pyproject.toml (needs PyPI;
#                    UPGRADE=1 takes the newest versions pyproject.toml allows), requirements/newest.lock (always
#                    the newest, for Python >= 3.12) and the conda environments (make envs)
# make envs        : regenerate envs/bmrsparse.yaml and envs/bmrsparse-gpu.yaml (conda) from the locks (make lock
#                    runs it; tools/lockfile.py envs)
# make wheels      : download every file the build's lock pins into WHEELS (default wheels/), for an offline set-up
#                    on a machine of the same platform and Python: PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/wheels make ...
#
# Set-up first checks $(PYTHON) (tools/check_python.py: pyproject.toml's requires-python, the venv module; a message
# says what is missing), then installs the build's lock file with hashes (pip install --require-hashes -r
# requirements/<build>.lock, which pins the build back-end, setuptools and wheel, too), then the project itself
# without dependencies and without an isolated build environment (pip install --no-deps --no-build-isolation -e .),
# so pip needs nothing beyond the lock's files: with PIP_NO_INDEX=1 and PIP_FIND_LINKS=<folder> it runs offline.
# It is redone when the lock or pyproject.toml changes, and when the build switches between CPU, CUDA 12 and CUDA 13
# (stamp files .venv/.installed-<build>; installing one removes the others' stamps and the packages only the other
# builds' locks pin: tools/lockfile.py).

PYTHON ?= python3
VENV := .venv
SNAKEMAKE := $(VENV)/bin/snakemake
# Snakemake as this folder's recorded owner (host, pid, start time: tools/unlock_stale.py --run)
RUN_SNAKEMAKE := $(VENV)/bin/python tools/unlock_stale.py --run . -- $(SNAKEMAKE)
PROFILE ?= profiles/local
REPORT ?= results/report.html
DEVICE ?=
SMK_ARGS ?=
PLAN ?= 1
YES ?=
# the plan of `make reproduce`, with the question when it estimates over an hour (tools/confirm_cost.py)
CONFIRM_COST = $(VENV)/bin/python tools/confirm_cost.py $(if $(filter 1,$(YES)),--yes) --
CPU_LOCK := requirements/cpu.lock
CUDA12_LOCK := requirements/cuda12.lock
CUDA13_LOCK := requirements/cuda13.lock
LOCKS := $(CPU_LOCK) $(CUDA12_LOCK) $(CUDA13_LOCK)
# each build's lock (recursive: a lock named on the command line, e.g. CPU_LOCK=..., counts)
LOCK_cpu = $(CPU_LOCK)
LOCK_cuda12 = $(CUDA12_LOCK)
LOCK_cuda13 = $(CUDA13_LOCK)
WHEELS ?= wheels
# $(PYTHON) is there, new enough and can make a venv (else a message that says what to do, and make stops)
REQUIRES_PYTHON := $(shell sed -n 's/^requires-python *= *"\(.*\)"/\1/p' pyproject.toml)
CHECK_PYTHON = command -v $(PYTHON) >/dev/null 2>&1 || { echo "bmrsparse: no $(PYTHON) on PATH; install Python \
    $(REQUIRES_PYTHON) or name one: make ... PYTHON=/path/to/python3" >&2; exit 1; }; $(PYTHON) tools/check_python.py

# An explicit CONFIG (command line or environment) wins over the profile the device chooses.
CONFIG_GIVEN := $(if $(filter command environment override,$(origin CONFIG)),$(CONFIG))

# The choice, computed once and only by the targets that use it (`make test` does not run nvidia-smi). Under
# `make -n` this $(shell ...) runs tools/choose_device.sh, which only asks `nvidia-smi -L` and, with a GPU,
# `nvidia-smi`.
BMR_CHOICE = $(eval BMR_CHOICE := $\
    $(shell DEVICE='$(DEVICE)' CUDA='$(CUDA)' CONFIG='$(CONFIG_GIVEN)' sh tools/choose_device.sh --make))$\
    $(if $(BMR_CHOICE),$(BMR_CHOICE),$(error tools/choose_device.sh gave no choice (see its message above)))
bmr_value = $(patsubst $(1)=%,%,$(firstword $(filter $(1)=%,$(BMR_CHOICE))))
BMR_DEVICE = $(call bmr_value,DEVICE)
BMR_BUILD = $(call bmr_value,BUILD)
BMR_EXTRAS = $(call bmr_value,EXTRAS)
BMR_CONFIG = $(call bmr_value,CONFIG)
BMR_GPUS = $(call bmr_value,GPUS)
# the choice line: the words after the five KEY=VALUE words
BMR_LINE = $(wordlist 6,$(words $(BMR_CHOICE)),$(BMR_CHOICE))
# one GPU job per GPU at a time (config/paper.yaml asks resources.gpu: 1 per training job)
BMR_RESOURCES = $(if $(filter cuda,$(BMR_DEVICE)),--resources gpu=$(BMR_GPUS))

.PHONY: reproduce plan plan-choice test test-newest dryrun-paper report setup install-cpu install-cuda install-cuda12 \
    install-cuda13 clean-results unlock lock wheels envs

setup:
	@$(MAKE) --no-print-directory install-$(BMR_BUILD)

# (`@:`: no "Nothing to be done" line when the install is current)
install-cpu: $(VENV)/.installed-cpu
	@:
install-cuda: DEVICE = cuda
install-cuda:
	@$(MAKE) --no-print-directory install-$(BMR_BUILD)
install-cuda12: $(VENV)/.installed-cuda12
	@:
install-cuda13: $(VENV)/.installed-cuda13
	@:

# One build's install: its lock, the project, and away with what only the other builds' locks pin (the CPU build
# must not keep a CUDA plugin, with which JAX would pick the GPU; CUDA 12 and CUDA 13 must not keep each other's).
# cpu: the dependencies + the `test` extra; cuda12, cuda13: + pyproject's `cuda12` / `cuda13` extra (the wheels
# bring the CUDA libraries; the machine needs the driver).
define install_build
$(VENV)/.installed-$(1): $(LOCK_$(1)) pyproject.toml
	@test -x $(VENV)/bin/python || { $(CHECK_PYTHON); }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	rm -f $(addprefix $(VENV)/.installed-,$(filter-out $(1),cpu cuda12 cuda13 cuda)) $(VENV)/.installed
	$(VENV)/bin/python -m pip install --require-hashes -r $(LOCK_$(1))
	$(VENV)/bin/python -m pip install --no-deps --no-build-isolation -e .
	$(VENV)/bin/python tools/lockfile.py remove-others $(LOCK_$(1)) $(filter-out $(LOCK_$(1)),$(LOCKS))
	touch $$@
endef
$(foreach b,cpu cuda12 cuda13,$(eval $(call install_build,$(b))))

plan-choice:
	@echo '$(BMR_LINE)'
	@echo 'DEVICE=$(BMR_DEVICE) BUILD=$(BMR_BUILD) EXTRAS=$(BMR_EXTRAS) CONFIG=$(BMR_CONFIG) GPUS=$(BMR_GPUS)'
	@echo 'would run: $(SNAKEMAKE) --profile $(PROFILE) --configfile $(BMR_CONFIG) $(BMR_RESOURCES) $(SMK_ARGS)'

# A lock left by a killed Snakemake is removed first (tools/unlock_stale.py: only once the run that held it is gone),
# so rerunning `make reproduce` after a kill resumes from the checkpoints. Snakemake runs under unlock_stale.py --run,
# which records this host and the run's processes beside the lock while it runs.
reproduce:
	@echo '$(BMR_LINE)'
	@$(MAKE) --no-print-directory install-$(BMR_BUILD)
	$(VENV)/bin/python tools/unlock_stale.py .
ifneq ($(PLAN),0)
	$(CONFIRM_COST) $(VENV)/bin/python -m bmrsparse.workflow.plan -- --profile $(PROFILE) --configfile $(BMR_CONFIG) $(BMR_RESOURCES) $(SMK_ARGS)
endif
	$(RUN_SNAKEMAKE) --profile $(PROFILE) --configfile $(BMR_CONFIG) $(BMR_RESOURCES) $(SMK_ARGS)
	$(MAKE) --no-print-directory report DEVICE=$(BMR_DEVICE) CONFIG=$(BMR_CONFIG)

plan:
	@echo '$(BMR_LINE)'
	@$(MAKE) --no-print-directory install-$(BMR_BUILD)
	$(VENV)/bin/python -m bmrsparse.workflow.plan -- --profile $(PROFILE) --configfile $(BMR_CONFIG) $(BMR_RESOURCES) $(SMK_ARGS)

report:
	@$(MAKE) --no-print-directory install-$(BMR_BUILD)
	$(VENV)/bin/python tools/unlock_stale.py .
	$(RUN_SNAKEMAKE) --profile $(PROFILE) --configfile $(BMR_CONFIG) $(SMK_ARGS) --report $(REPORT)

unlock:
	@$(MAKE) --no-print-directory install-$(BMR_BUILD)
	$(VENV)/bin/python tools/unlock_stale.py .

test: $(VENV)/.installed-cpu
	$(VENV)/bin/pytest -q

# The newest JAX beside the locked one: JAX >= 0.11 needs Python >= 3.12, the locks serve 3.11.
NEWEST_VENV := .venv-newest
NEWEST_LOCK := requirements/newest.lock
PYTHON_NEWEST ?= $(shell sh tools/find_python.sh 3.12)

$(NEWEST_VENV)/.installed: $(NEWEST_LOCK) pyproject.toml
	test -x $(NEWEST_VENV)/bin/python || $(or $(PYTHON_NEWEST),false) -m venv $(NEWEST_VENV)
	$(NEWEST_VENV)/bin/python -m pip install -q --require-hashes -r $(NEWEST_LOCK)
	$(NEWEST_VENV)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

test-newest: $(NEWEST_VENV)/.installed
	$(NEWEST_VENV)/bin/python -c 'import jax, numpyro; print(f"jax {jax.__version__}, numpyro {numpyro.__version__}")'
	$(NEWEST_VENV)/bin/pytest -q -p no:cacheprovider tests/core/test_rng.py tests/tooling/test_newest_jax.py

dryrun-paper:
	@$(MAKE) --no-print-directory install-$(BMR_BUILD)
	$(SNAKEMAKE) --profile $(PROFILE) --configfile config/paper.yaml --dry-run --quiet rules

clean-results:
	rm -rf results logs benchmarks

# ---- lock files -----------------------------------------------------------------------------------------------
# One universal lock per build (every platform and Python >= 3.11, markers choosing the lines) with the hashes of
# every file of each pinned version. Pins already in a lock are kept unless pyproject.toml needs others. uv itself
# is pinned and installed into .lock-tools/ (ignored by git).
# requirements/build.in is pyproject.toml's [build-system] requires (tools/lockfile.py check compares them): the
# locks pin the build back-end, so that `pip install --no-build-isolation -e .` needs no index.
UV_VERSION := 0.13.9
UV := .lock-tools/bin/uv
LOCK_PY := .lock-tools/bin/python
BUILD_IN := requirements/build.in
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes
LOCK_CPU_CMD := uv pip compile pyproject.toml $(BUILD_IN) --extra test $(LOCK_FLAGS) -o $(CPU_LOCK)
LOCK_CUDA12_CMD := uv pip compile pyproject.toml $(BUILD_IN) --extra cuda12 --extra test $(LOCK_FLAGS) -o $(CUDA12_LOCK)
LOCK_CUDA13_CMD := uv pip compile pyproject.toml $(BUILD_IN) --extra cuda13 --extra test $(LOCK_FLAGS) -o $(CUDA13_LOCK)
# the dependencies at the newest versions pyproject.toml allows on Python >= 3.12, the build back-end, and pytest
# (requirements/newest.in)
LOCK_NEWEST_CMD := uv pip compile pyproject.toml $(BUILD_IN) requirements/newest.in --universal --python-version 3.12 \
    --generate-hashes --upgrade -o $(NEWEST_LOCK)

$(LOCK_PY):
	@$(CHECK_PYTHON)
	$(PYTHON) -m venv .lock-tools

$(UV): $(LOCK_PY)
	$(LOCK_PY) -m pip install -q uv==$(UV_VERSION)

# Every file the lock pins for this platform and Python (wheels, and the sdists of packages that publish no wheel)
wheels: $(LOCK_PY)
	$(LOCK_PY) -m pip download --no-deps --require-hashes -r requirements/$(BMR_BUILD).lock -d $(WHEELS)
	@echo "offline set-up from it: PIP_NO_INDEX=1 PIP_FIND_LINKS=$(abspath $(WHEELS)) make ... DEVICE=$(BMR_DEVICE)"

lock: $(UV)
	.lock-tools/bin/$(LOCK_CPU_CMD) --quiet $(if $(filter 1,$(UPGRADE)),--upgrade) \
	    --custom-compile-command "make lock  (= $(LOCK_CPU_CMD); uv $(UV_VERSION))"
	.lock-tools/bin/$(LOCK_CUDA12_CMD) --quiet $(if $(filter 1,$(UPGRADE)),--upgrade) \
	    --custom-compile-command "make lock  (= $(LOCK_CUDA12_CMD); uv $(UV_VERSION))"
	.lock-tools/bin/$(LOCK_CUDA13_CMD) --quiet $(if $(filter 1,$(UPGRADE)),--upgrade) \
	    --custom-compile-command "make lock  (= $(LOCK_CUDA13_CMD); uv $(UV_VERSION))"
	.lock-tools/bin/$(LOCK_NEWEST_CMD) --quiet \
	    --custom-compile-command "make lock  (= $(LOCK_NEWEST_CMD); uv $(UV_VERSION))"
	@$(MAKE) --no-print-directory envs

# The conda environments pin what the locks pin (with the CPU .venv's tools/lockfile.py, which needs `packaging`)
envs: $(VENV)/.installed-cpu
	$(VENV)/bin/python tools/lockfile.py envs
