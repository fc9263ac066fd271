"""The side-by-side seed table: per epoch, each side's mean and [min, max] over seeds of the pruned fraction,
accuracy and NLL, from a CSV with columns side,arch,seed,epoch,pruned_fraction,acc,nll (Markdown on stdout).

    python tools/seed_table.py src/bmrsparse/workflow/reference_data/authors_schedule.csv
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

SIDES = {"authors": "authors' code", "bmrsparse": "bmrsparse"}
ARCH_LABELS = {"mlp": "MLP", "lenet": "LeNet-5"}
COLUMNS = (("pruned_fraction", "pruned"), ("acc", "ACC"), ("nll", "NLL"))


def cell(values: pd.Series) -> str:
    """`mean [min, max]` (just the value for one seed)."""
    if len(values) == 1:
        return f"{values.iloc[0]:.3f}"
    return f"{values.mean():.3f} [{values.min():.3f}, {values.max():.3f}]"


def seed_table(df: pd.DataFrame) -> str:
    missing = {"side", "arch", "seed", "epoch", *(c for c, _ in COLUMNS)} - set(df.columns)
    if missing:
        raise ValueError(f"the CSV lacks the columns {sorted(missing)}")
    head = ["arch", "epoch"] + [f"{label} ({SIDES.get(s, s)})" for c, label in COLUMNS for s in SIDES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arch in [a for a in ARCH_LABELS if a in set(df.arch)] + sorted(set(df.arch) - set(ARCH_LABELS)):
        for epoch in sorted(df.loc[df.arch == arch, "epoch"].unique()):
            row = [ARCH_LABELS.get(arch, arch), str(epoch)]
            for column, _ in COLUMNS:
                for side in SIDES:
                    sel = df[(df.arch == arch) & (df.epoch == epoch) & (df.side == side)][column]
                    row.append(cell(sel) if len(sel) else "")
            lines.append("| " + " | ".join(row) + " |")
    seeds = "; ".join(
        f"{ARCH_LABELS.get(a, a)}: {SIDES.get(s, s)} seeds {', '.join(map(str, sorted(g.seed.unique())))}"
        for (a, s), g in df.groupby(["arch", "side"])
    )
    return "\n".join(lines) + f"\n\nmean [min, max] over seeds ({seeds}).\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv")
    args = parser.parse_args(argv)
    sys.stdout.write(seed_table(pd.read_csv(args.csv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
