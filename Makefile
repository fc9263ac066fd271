# make reproduce   : set up .venv (first time), run the default profile, build the report (results/report.html)
# make test        : set up .venv (first time), run the test suite
# make dryrun-paper: show the jobs of the paper's full grid without running them
#
# Set-up is redone only when pyproject.toml changes (stamp file .venv/.installed).

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
SNAKEMAKE := $(VENV)/bin/snakemake
PROFILE ?= profiles/local
CONFIG ?= config/config.yaml
REPORT ?= results/report.html

.PHONY: reproduce test dryrun-paper report setup clean-results

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -e '.[test]'
	touch $@

reproduce: $(STAMP)
	$(SNAKEMAKE) --profile $(PROFILE) --configfile $(CONFIG)
	$(MAKE) report

report: $(STAMP)
	$(SNAKEMAKE) --profile $(PROFILE) --configfile $(CONFIG) --report $(REPORT)

test: $(STAMP)
	$(VENV)/bin/pytest -q

dryrun-paper: $(STAMP)
	$(SNAKEMAKE) --profile $(PROFILE) --configfile config/paper.yaml --dry-run --quiet rules

clean-results:
	rm -rf results logs benchmarks
