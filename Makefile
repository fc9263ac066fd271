# make reproduce   : set up .venv (first time), run the default profile, build the report (results/report.html)
# make test        : set up .venv (first time), run the test suite
# make dryrun-paper: show the jobs of the paper's full grid without running them
# make unlock      : remove the lock a killed Snakemake left (refuses while one runs in this folder)
#
# Set-up is redone only when pyproject.toml changes (stamp file .venv/.installed).

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
SNAKEMAKE := $(VENV)/bin/snakemake
PROFILE ?= profiles/local
CONFIG ?= config/config.yaml
REPORT ?= results/report.html

.PHONY: reproduce test dryrun-paper report setup clean-results unlock

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -e '.[test]'
	touch $@

# A lock left by a killed Snakemake is removed first (tools/unlock_stale.py: only if no Snakemake on this machine
# works in this folder), so rerunning `make reproduce` after a kill resumes from the checkpoints.
reproduce: $(STAMP)
	$(VENV)/bin/python tools/unlock_stale.py .
	$(SNAKEMAKE) --profile $(PROFILE) --configfile $(CONFIG)
	$(MAKE) report

report: $(STAMP)
	$(VENV)/bin/python tools/unlock_stale.py .
	$(SNAKEMAKE) --profile $(PROFILE) --configfile $(CONFIG) --report $(REPORT)

unlock: $(STAMP)
	$(VENV)/bin/python tools/unlock_stale.py .

test: $(STAMP)
	$(VENV)/bin/pytest -q

dryrun-paper: $(STAMP)
	$(SNAKEMAKE) --profile $(PROFILE) --configfile config/paper.yaml --dry-run --quiet rules

clean-results:
	rm -rf results logs benchmarks
