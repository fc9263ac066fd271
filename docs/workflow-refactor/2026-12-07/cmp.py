import sys, pandas as pd
from pathlib import Path
DROP = {"seconds", "steps_per_s", "ms_per_batch", "speedup", "speedup_same_runtime", "train_seconds", "device",
        "library", "commit", "library_digest", "date", "jax", "numpyro", "host", "xla_threads", "wall_s", "time"}
ok = True
for name in sorted(p.name for p in Path("before/results/tables").glob("*.csv")):
    a = pd.read_csv(f"before/results/tables/{name}"); b = pd.read_csv(f"after/results/tables/{name}")
    if name.startswith("provenance"):
        print(name, "rows", len(a), len(b), "columns same:", list(a.columns) == list(b.columns)); continue
    cols = [c for c in a.columns if c not in DROP and not c.endswith("_s")]
    same_cols = list(a.columns) == list(b.columns)
    try:
        eq = a[cols].equals(b[cols])
    except KeyError as e:
        eq = f"missing {e}"
    print(f"{name}: {len(a)} rows, columns identical: {same_cols}, identical values (minus {sorted(set(a.columns)-set(cols))}): {eq}")
    if eq is not True:
        ok = False
        d = a[cols].compare(b[cols]) if same_cols else None
        print(d.head(20) if d is not None else "")
m_a = pd.read_csv("before/results/metrics/metrics.csv"); m_b = pd.read_csv("after/results/metrics/metrics.csv")
cols = [c for c in m_a.columns if c not in DROP]
print("metrics.csv:", len(m_a), "rows; identical (minus seconds, steps_per_s, provenance):", m_a[cols].equals(m_b[cols]))
fa = sorted(str(p.relative_to("before")) for p in Path("before/results").rglob("*") if p.is_file() and ".jax_cache" not in str(p))
fb = sorted(str(p.relative_to("after")) for p in Path("after/results").rglob("*") if p.is_file() and ".jax_cache" not in str(p))
print("result files:", len(fa), len(fb), "same names:", fa == fb, set(fa) ^ set(fb))
