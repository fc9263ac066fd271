"""tools/init_sweep.py: many seeds' first steps at once, their initial global scales, and the swap of docs/tiered-collapse.md."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("init_sweep", ROOT / "tools" / "init_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scales(out: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"seed (\d+): initial ln\(v/tau0\) per layer (\[.*\])", out)}


def test_seeds_their_scales_and_a_swap_that_reads_the_initial_values(fmnist_small, capsys):
    tool = _tool()
    assert tool.seed_list("0-3") == [0, 1, 2, 3] and tool.seed_list("1,5") == [1, 5]
    common = [str(fmnist_small), "--configfile", str(ROOT / "config" / "test.yaml"), "--seeds", "0-2",
              "--steps", "2,2", "--test-images", "100"]
    assert tool.main(common) == 0
    out = capsys.readouterr().out
    before = _scales(out)
    assert sorted(before) == [0, 1, 2] and len(set(before.values())) == 3
    assert len(re.findall(r"^step \d: acc 0:0\.\d{3} 1:0\.\d{3} 2:0\.\d{3}$", out, re.M)) == 2
    assert re.search(r"^collapsed \(at chance after 4 steps\): (none|\[[\d, ]+\]) of 3 seeds$", out, re.M)
    # seed 1 starts from seed 0's global scales, seed 2 from seed 1's initial ones (not from the swapped seed 1's)
    assert tool.main(common + ["--swap", "0:1", "--swap", "1:2"]) == 0
    after = _scales(capsys.readouterr().out)
    assert after == {0: before[0], 1: before[0], 2: before[1]}
