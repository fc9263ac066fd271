"""Reuse from another workflow: a consumer workflow `module`s this one, imports its rules with a prefix, adds a rule
on top and dry-runs; `skip_validation` is honoured. Also the Snakemake formatting check (snakefmt)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow

ROOT = Path(__file__).resolve().parents[2]

# The README's lines ("Reuse from another workflow"), with the module's path filled in.
CONSUMER = """\
configfile: "my_config.yaml"


module bmr:
    snakefile: "{snakefile}"
    config: config["bmrsparse"]{extra}


use rule * from bmr as bmr_*


rule accuracy_report:
    input:
        rules.bmr_tables.output,
    output:
        "my_results/accuracy_report.txt",
    shell:
        "cat {{input}} > {{output}}"
"""


def consumer(tmp_path: Path, config: dict, extra: str = "") -> Path:
    """A consumer workflow in its own folder (the module is a copy of this workflow elsewhere)."""
    module = copy_workflow(tmp_path / "bmrsparse")
    home = tmp_path / "consumer"
    home.mkdir()
    (home / "Snakefile").write_text(CONSUMER.format(snakefile=module / "Snakefile", extra=extra))
    (home / "my_config.yaml").write_text(yaml.safe_dump(config))
    return home


def complete_config(config: dict, tmp_path: Path) -> dict:
    """`config` with every key the schema has (its defaults filled in), as a consumer skipping validation gives."""
    from snakemake.utils import validate

    from bmrsparse.workflow.schema import fill_schema

    schema = fill_schema(yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text()))
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(schema))
    validate(config, str(path), set_default=True)
    return config


def dry_run(home: Path, *targets: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--dry-run", "--quiet", "rules", "--", *targets]
    return subprocess.run(command, cwd=home, capture_output=True, text=True, timeout=300)


def test_consumer_workflow_modules_this_one(tmp_path):
    """The prefixed rules plan the whole grid under the consumer's folder; the consumer's rule sits on top. The
    module's config is the consumer's sub-dict, missing keys filled from the schema's defaults."""
    test = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    mine = {key: test[key] for key in ("datasets", "methods", "seeds", "schedule", "evaluation")}
    mine["archs"] = ["mlp"]
    mine["training"] = {"net": test["training"]["net"]}
    home = consumer(tmp_path, {"bmrsparse": mine, "my_own_key": 1})
    result = dry_run(home, "accuracy_report", "bmr_all")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for rule in ("accuracy_report", "bmr_all", "bmr_tables", "bmr_train_warmup", "bmr_sparsity_curve",
                 "bmr_plot_sparsity_accuracy", "bmr_prepare_dataset"):
        assert rule in output, (rule, output[-3000:])
    # nothing but the consumer's rule and the prefixed ones
    table = output[output.index("Job stats:"):output.index("total")]
    rules = {line.split()[0] for line in table.splitlines()[3:] if line.strip()}
    assert rules and all(r == "accuracy_report" or r.startswith("bmr_") for r in rules), rules
    assert not (home / "results").exists() and not (tmp_path / "bmrsparse" / "results").exists()


def test_skip_validation_is_honoured(tmp_path):
    """A module config with a key the schema does not know fails validation, naming it, unless the consumer
    says skip_validation (then the consumer vouches for a complete config)."""
    full = complete_config({**yaml.safe_load((ROOT / "config" / "test.yaml").read_text()), "archs": ["mlp"]},
                           tmp_path)
    full["consumer_note"] = "mine"
    home = consumer(tmp_path / "strict", {"bmrsparse": full})
    strict = dry_run(home, "accuracy_report")
    assert strict.returncode != 0
    assert "unknown config key 'consumer_note'" in strict.stdout + strict.stderr
    home = consumer(tmp_path / "skip", {"bmrsparse": full}, extra="\n    skip_validation: True")
    skipped = dry_run(home, "accuracy_report")
    assert skipped.returncode == 0, (skipped.stdout + skipped.stderr)[-3000:]


def test_snakefmt_formats_the_workflow():
    """Snakefile and the rule files are formatted by snakefmt with the project's line length (pyproject.toml)."""
    exe = shutil.which("snakefmt") or str(Path(sys.executable).parent / "snakefmt")
    if not Path(exe).exists():
        pytest.skip("snakefmt is not installed (pip install -e '.[test]')")
    files = ["Snakefile", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "workflow" / "rules").glob("*.smk"))]
    result = subprocess.run([exe, "--check", *files], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        diff = subprocess.run([exe, "--diff", *files], cwd=ROOT, capture_output=True, text=True, timeout=120)
        pytest.fail(f"not formatted by snakefmt (run `snakefmt Snakefile workflow/rules`):\n{diff.stdout[-4000:]}")
