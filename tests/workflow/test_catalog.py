"""The Snakemake workflow catalog's conventions: workflow/Snakefile, config/README.md and
.snakemake-workflow-catalog.yml; a snakedeploy deployment (offline, from a local copy) plans the root's jobs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / ".snakemake-workflow-catalog.yml"
#: Software deployments (the catalog's keys) that a test of this project runs, and that test. Empty: neither
#: `--sdm conda` nor a container has run here (the test machine has no conda, singularity or apptainer).
DEPLOYMENTS_RUN_BY_A_TEST: dict[str, str] = {}


def test_catalog_file_follows_the_catalogs_format():
    spec = yaml.safe_load(CATALOG.read_text())
    assert set(spec) == {"usage"}
    usage = spec["usage"]
    assert set(usage) <= {"mandatory-flags", "software-stack-deployment", "report"}
    flags = usage["mandatory-flags"]
    assert set(flags) == {"desc", "flags"} and isinstance(flags["desc"], str) and isinstance(flags["flags"], str)
    stack = usage["software-stack-deployment"]
    assert set(stack) <= {"conda", "singularity", "singularity+conda", "apptainer", "apptainer+conda"}
    assert all(isinstance(v, bool) for v in stack.values())
    assert isinstance(usage["report"], bool)
    # it claims only what a test runs (issue 31.4): no test deploys with conda or a container (no conda here)
    claimed = {kind for kind, on in stack.items() if on}
    assert claimed <= set(DEPLOYMENTS_RUN_BY_A_TEST), f"claimed but never run by a test: {claimed}"
    rules = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    if stack.get("conda"):
        for env in {"ENV": "bmrsparse.yaml", "GPU_ENV": "bmrsparse-gpu.yaml"}.values():
            assert (ROOT / "envs" / env).is_file()
        assert rules.count("conda:") >= rules.count("script:") > 0
    if usage["report"]:  # tests/workflow/test_workflow.py builds the report
        assert re.search(r'^report: "workflow/report/workflow.rst"$', (ROOT / "Snakefile").read_text(), re.M)
    assert (ROOT / "workflow" / "Snakefile").is_file() and (ROOT / "config" / "README.md").is_file()


def _jobs(workdir: Path, *args: str) -> dict[str, int]:
    run = subprocess.run([sys.executable, "-m", "snakemake", "--dry-run", "--quiet", "rules", *args], cwd=workdir,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    table = run.stdout[run.stdout.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)
            if m.group(1) != "total"}


def test_snakedeploy_deployment_plans_the_root_snakefiles_jobs(tmp_path):
    """`snakedeploy deploy-workflow` from a local copy (no network): it copies config/ and profiles/ and writes a
    Snakefile that imports workflow/Snakefile as a module. Its local provider writes the module's path relative to
    the source, not to the deployment (from GitHub it writes github(..., path="workflow/Snakefile")), so the test
    points it at the copy's workflow/Snakefile; the deployment then plans the root Snakefile's jobs."""
    pytest.importorskip("snakedeploy", reason="snakedeploy is in the test extra (pip install -e '.[test]')")
    source = copy_workflow(tmp_path / "bmrsparse")
    shutil.copy2(CATALOG, source / CATALOG.name)
    dest = tmp_path / "deployed"
    snakedeploy = str(Path(sys.executable).parent / "snakedeploy")
    run = subprocess.run([snakedeploy, "deploy-workflow", str(source), str(dest), "--branch", "main"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert (dest / "config" / "config.yaml").read_text() == (ROOT / "config" / "config.yaml").read_text()
    assert (dest / "profiles" / "default" / "config.yaml").is_file()
    snakefile = dest / "workflow" / "Snakefile"
    text = snakefile.read_text()
    assert re.search(r'^module bmrsparse:\n\s+snakefile:\s*\n\s+"workflow/Snakefile"', text, flags=re.M), text
    assert "use rule * from bmrsparse" in text
    snakefile.write_text(text.replace('"workflow/Snakefile"', f'"{source / "workflow" / "Snakefile"}"'))
    deployed = _jobs(dest, "--configfile", "config/test.yaml")
    assert deployed == _jobs(source, "--configfile", "config/test.yaml")
    assert deployed["all"] == 1 and deployed["train_warmup"] >= 1
