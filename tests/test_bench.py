"""The benchmark entry point on a shrunken grid (a smoke test, not a timed test)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

from bmrsparse import bench


def test_bench_writes_a_row_per_arch_method_and_seed_count(tmp_path):
    out = tmp_path / "bench.csv"
    bench.main(["--tiny", "--steps", "3", "--archs", "mlp", "lenet", "--methods", "flat_map", "bmr_ss",
                "--seeds", "2", "--out", str(out)])
    df = pd.read_csv(out)
    assert len(df) == 2 * 2 * 2  # archs x methods x {1 seed, 2 seeds}
    assert {"device", "ms_per_step", "steps_per_s", "compile_s", "prune_ms", "prune_share",
            "cost_vs_one_seed"} <= set(df.columns)
    assert (df.ms_per_step > 0).all() and (df.compile_s > 0).all()
    np.testing.assert_allclose(df.ms_per_step * df.steps_per_s, 1000.0, rtol=1e-6)
    bmr = df[df.method == "bmr_ss"]
    assert (bmr.prune_ms > 0).all() and (bmr.prune_share > 0).all()
    assert df[df.method == "flat_map"].prune_ms.isna().all()
    assert (df[df.seeds == 1].cost_vs_one_seed == 1.0).all()


def test_bench_command_line_rejects_bad_steps():
    run = subprocess.run([sys.executable, "-m", "bmrsparse.bench", "--steps", "0"], capture_output=True, text=True)
    assert run.returncode != 0 and "--steps must be >= 1" in run.stderr
