"""Claim 2 ("BMR-S&S has the lowest ECE and NLL, Tiered-FF the second lowest") per code and seed, side by side: the
authors' code (``../shared/tools/ref_bench.py fmnist``, one JSON line per run) and ours (the workflow's
``results/metrics/metrics.csv``), each judged at its last epoch by the claims table's own rule
(:func:`bmrsparse.workflow.claims.claim_calibration`). Markdown on stdout.

    python tools/claim2_table.py --authors DIR --ours results/metrics/metrics.csv [--arch mlp] [--dataset fashion_mnist]

``DIR`` holds ``[prefix_]{arch}_seed{S}_{method}.jsonl`` with method one of bmrss, tieredff, flatff, flatmap (the files
``ref_bench.py`` writes to stdout, one per method: SEED=S METHODS='BMR-S&S' ...). A seed counts only when all four
methods are present for it, and is not judged when one of them collapsed to chance-level predictions (its ECE and
NLL then say nothing; :func:`bmrsparse.workflow.claims.claim_calibration`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

from bmrsparse.data import NUM_CLASSES
from bmrsparse.workflow.claims import HOLDS, NA, claim_calibration

#: ref_bench's file tags -> our method names
AUTHORS_METHODS = {"bmrss": "bmr_ss", "tieredff": "tiered_ff", "flatff": "flat_ff", "flatmap": "flat_map"}
FOUR = ("flat_map", "flat_ff", "tiered_ff", "bmr_ss")


def authors_finals(folder: Path, arch: str) -> pd.DataFrame:
    """The last epoch's ACC, ECE and NLL of every complete run of the authors' code in ``folder``."""
    rows = []
    for path in sorted(folder.glob(f"*{arch}_seed*_*.jsonl")):
        m = re.fullmatch(rf"(?:\w+_)?{arch}_seed(\d+)_([a-z]+)\.jsonl", path.name)
        if not m or m.group(2) not in AUTHORS_METHODS:
            continue
        lines = [line for line in path.read_text().splitlines() if line.strip().startswith("{")]
        if not lines:
            continue
        run = json.loads(lines[-1])
        rows.append(dict(seed=int(m.group(1)), method=AUTHORS_METHODS[m.group(2)], acc=run["acc"][-1],
                         ece=run["ece"][-1], nll=run["nll"][-1], epochs=len(run["acc"])))
    return pd.DataFrame(rows, columns=["seed", "method", "acc", "ece", "nll", "epochs"])


def our_finals(metrics_csv: Path, dataset: str, arch: str) -> pd.DataFrame:
    """The last epoch of every (seed, method) of the four paper methods in our per-epoch metrics."""
    df = pd.read_csv(metrics_csv)
    df = df[(df["dataset"] == dataset) & (df["arch"] == arch) & df["method"].isin(FOUR)]
    last = df.sort_values("epoch").groupby(["seed", "method"], as_index=False).last()
    return last[["seed", "method", "acc", "ece", "nll", "epoch"]].rename(columns={"epoch": "epochs"})


def verdicts(finals: pd.DataFrame, num_classes: int) -> list[tuple[int, str, str, pd.DataFrame]]:
    """(seed, verdict, evidence, the seed's rows) for every seed that has all four methods."""
    out = []
    for seed, rows in finals.groupby("seed", sort=True):
        if set(rows["method"]) >= set(FOUR):
            verdict, evidence = claim_calibration(rows, num_classes)
            out.append((int(seed), verdict, evidence, rows))
    return out


def table(sides: dict[str, pd.DataFrame], num_classes: int = 10) -> str:
    head = ["code", "seed"] + [f"{q} {m}" for q in ("ECE", "NLL") for m in FOUR] + ["claim 2"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    counts = {}
    for side, finals in sides.items():
        judged = verdicts(finals, num_classes)
        left_out = [seed for seed, v, _, _ in judged if v == NA]
        counts[side] = (sum(v == HOLDS for _, v, _, _ in judged), len(judged) - len(left_out), left_out)
        for seed, verdict, evidence, rows in judged:
            by = rows.set_index("method")
            cells = [f"{by.loc[m, q]:.4f}" for q in ("ece", "nll") for m in FOUR]
            shown = f"{verdict} ({evidence})" if verdict == NA else verdict
            lines.append("| " + " | ".join([side, str(seed), *cells, shown]) + " |")
    summary = " and ".join(
        f"in {k} of {n} seeds for {side}" + (f" (seed {', '.join(map(str, out))} not judged: a method collapsed)"
                                             if out else "")
        for side, (k, n, out) in counts.items())
    return "\n".join(lines) + f"\n\nOn this schedule claim 2 holds {summary}.\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--authors", type=Path, help="folder of ref_bench.py fmnist outputs ({arch}_seed{S}_{method}.jsonl)")
    p.add_argument("--ours", type=Path, action="append", default=[],
                   help="our per-epoch metrics (results/metrics/metrics.csv); may repeat")
    p.add_argument("--arch", default="mlp")
    p.add_argument("--dataset", default="fashion_mnist")
    args = p.parse_args(argv)
    sides = {}
    if args.authors:
        sides["the authors' code"] = authors_finals(args.authors, args.arch)
    if args.ours:
        sides["bmrsparse"] = pd.concat([our_finals(f, args.dataset, args.arch) for f in args.ours])
    if not sides:
        p.error("give --authors, --ours or both")
    sys.stdout.write(table(sides, NUM_CLASSES[args.dataset]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
