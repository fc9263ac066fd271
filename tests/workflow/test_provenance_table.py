"""The provenance table (bmrsparse.workflow.provenance): each training job's record, read back from its metrics."""

from __future__ import annotations

import pandas as pd
import pytest

from bmrsparse.io import atomic_write_verified
from bmrsparse.workflow.provenance import config_files, provenance_table, record_command


def test_provenance_table_reads_each_jobs_record(tmp_path):
    record = {"library": "abc123", "device": "gpu: NVIDIA H100", "jax": "0.10.2", "jaxlib": "0.10.2",
              "numpyro": "0.22.0", "flax": "0.12.8", "numpy": "2.4.6", "optax": "0.2.8",
              "cuda_plugin": "jax-cuda12-plugin 0.10.2", "python": "3.11.7", "commit": "76695b5-modified",
              "xla_threads": "1"}
    new = tmp_path / "results" / "warmup" / "mlp" / "metrics.csv"
    old = tmp_path / "results" / "train" / "mlp" / "metrics.csv"
    new.parent.mkdir(parents=True)
    old.parent.mkdir(parents=True)
    atomic_write_verified(new, pd.DataFrame([{"epoch": 0, "acc": 0.5, **record}, {"epoch": 1, "acc": 0.6, **record}]).to_csv(index=False))
    atomic_write_verified(old, pd.DataFrame([{"epoch": 0, "acc": 0.5}]).to_csv(index=False))
    table = provenance_table([new, old])
    assert table.job.tolist() == ["warmup/mlp", "train/mlp"]
    assert table.iloc[0].drop("job").to_dict() == record
    assert set(table.iloc[1].drop("job")) == {"not recorded"}
    atomic_write_verified(new, pd.DataFrame([{"epoch": 0, **record}, {"epoch": 1, **record, "device": "cpu: other"}]).to_csv(index=False))
    with pytest.raises(ValueError, match="more than one device"):
        provenance_table([new])


def test_the_command_is_recorded_for_the_main_process_only():
    env = {}
    record_command(["/usr/bin/snakemake", "--cores", "2", "--config", "archs=[mlp]"], env)
    assert env == {"BMRSPARSE_SNAKEMAKE_COMMAND": "snakemake --cores 2 --config 'archs=[mlp]'"}
    for argv in (["/usr/bin/snakemake", "--target-jobs", "x"], ["python", "-m", "bmrsparse.workflow.plan"]):
        other = {}
        record_command(argv, other)
        assert other == {}


def test_config_files_are_listed_once_in_merge_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = str(tmp_path / "config" / "config.yaml")
    assert config_files([base, "config/paper.yaml"], ["config/paper.yaml"]) == ["config/config.yaml",
                                                                              "config/paper.yaml"]
    # `make reproduce` names config/config.yaml both as the Snakefile's and with --configfile: listed once
    assert config_files([base, "config/config.yaml"], ["config/config.yaml"]) == ["config/config.yaml"]
