"""Helpers of tools/gpu/measure.sh (standard library + pandas + yaml only; runs on the device machine).

    summary.py xla DUMP_DIR                      kernels per SVI step from an XLA dump of the bench's chunk programs
    summary.py plan BENCH_CSV CONFIG SCHEDULE AVAIL_S NETWORK_NAMES METHODS OVERLAY
                                                 estimate the workflow's wall time, pick the schedule, write OVERLAY
    summary.py profile PROFILE_DIR               issue 22: per profiled step (PROFILE_DIR/<arch>-x<seeds>/, made by
                                                 profile_step.py): ms/step, XLA ops per step, device kernels per
                                                 step and the largest kernels from the profiler's trace; 8 seeds
                                                 over one seed
    summary.py repro LOG [JOB_LOG...]            issue 22: `make reproduce` on the device: its first line, the plan
                                                 and its ETA, the first training job's progress, the CUDA evidence
    summary.py summary OUT [PLAN_TXT]            the short table printed last: bench rows, the issue's targets,
                                                 the workflow's results, profile.txt and reproduce.txt
"""

from __future__ import annotations

import glob
import math
import os
import re
import sys

from kernels import cmd_profile, cmd_xla  # this folder's modules (the script's folder is on the path)
from reproduce_log import cmd_repro

# Issue 13's GPU targets.
FLAT_FF_MLP_MS = 0.095  # 4x faster than the authors' code's 0.38 ms/step (H200)
BAYES_OVER_MAP = 1.5
SEEDS8_OVER_ONE = 1.5
COMPILE_S = 10.0
REFERENCE_H200_MS = {"flat_map": 0.27, "flat_ff": 0.38}  # authors' code, MLP 5x400, NVIDIA H200

# Per job: Python start, imports, data load, compile, evaluation (seconds, for the estimate only).
JOB_OVERHEAD_S = 20.0
FIXED_OVERHEAD_S = 60.0  # prepare_dataset, sparsity curve, metrics, tables, figures
FACTORS = (1.0, 0.5, 0.25, 0.2, 0.1, 0.05, 0.02, 0.01)

# ---------------------------------------------------------------------------------------------------------------
def cmd_plan(bench_csv, config, schedule, avail_s, archs, methods, overlay) -> None:
    import yaml

    if os.path.exists(overlay):
        os.remove(overlay)
    cfg = yaml.safe_load(open(config))
    W, E, n = (int(float(cfg["schedule"][k])) for k in ("warmup_steps", "epoch_steps", "num_epochs"))
    methods = methods.split()
    # SVI steps each method's jobs run (config/paper.yaml's rules: a shared Flat-FF warm-up, Flat-FF and BMR-S&S
    # continue from it, Flat-MAP and Tiered-FF train from scratch over warm-up + epochs)
    steps = {"flat_ff": W + n * E, "bmr_ss": n * E, "flat_map": W + n * E, "tiered_ff": W + n * E}
    # bench.csv, and the rows an architecture cut before writing its CSV printed into measure.log beside it
    rows = bench_rows(os.path.dirname(os.path.abspath(bench_csv)), os.path.basename(bench_csv))
    rows = None if rows.empty else rows
    gpu_s = 0.0
    for arch in archs.split():
        for m in methods:
            ms = None
            if rows is not None and "seeds" in rows:
                r = rows[(rows.arch == arch) & (rows.method == m) & (rows.seeds == 1)]
                if len(r):
                    ms = float(r.ms_per_step.iloc[0])
            if ms is None:
                ms = float(cfg["resources"]["ms_per_step"]["gpu"][arch])
                print(f"plan: no bench row for {arch}/{m}; using the config's guess {ms} ms/step")
            gpu_s += steps.get(m, W + n * E) * ms / 1e3
    chain = 1 + n  # the warm-up, then BMR-S&S's epochs one job after another

    def est(f):
        return f * gpu_s + chain * JOB_OVERHEAD_S + FIXED_OVERHEAD_S

    avail = float(avail_s)
    if schedule == "paper":
        f = 1.0
    elif schedule == "auto":
        f = next((x for x in FACTORS if est(x) <= avail), FACTORS[-1])
    else:
        f = float(schedule)
    print(f"plan: the config's schedule ({W} warm-up + {n} x {E} steps, archs {archs}) needs about {est(1.0):.0f} s "
          f"(GPU work {gpu_s:.0f} s if the jobs ran one after another + {chain} chained jobs x {JOB_OVERHEAD_S:.0f} s "
          f"+ {FIXED_OVERHEAD_S:.0f} s); {avail:.0f} s are left")
    if f != 1.0:
        w, e = max(1, round(W * f)), max(1, round(E * f))
        with open(overlay, "w") as fh:
            yaml.safe_dump({"schedule": {"warmup_steps": w, "epoch_steps": e, "num_epochs": n}}, fh)
        print(f"plan: SCALED schedule x{f:g}: {w} warm-up + {n} x {e} steps (estimate {est(f):.0f} s) - "
              f"NOT the paper's schedule")
    else:
        print(f"plan: the config's full schedule ({'forced' if schedule == 'paper' else 'it fits'})")


# ---------------------------------------------------------------------------------------------------------------
def bench_rows(out, name="bench.csv"):
    """bench.csv, or the rows the bench printed in measure.log (an architecture cut before writing its CSV)."""
    import pandas as pd

    csv = os.path.join(out, name)
    df = pd.read_csv(csv) if os.path.exists(csv) else pd.DataFrame()
    log = os.path.join(out, "measure.log")
    printed = []
    if os.path.exists(log):
        # the device name may hold spaces ("gpu:NVIDIA H100 80GB HBM3"): match it lazily up to the arch column
        pat = re.compile(r"^\s*(\S.*?)\s+(\w+)\s+(\w+) x(\d+)\s+([\d.]+) ms/step\s+[\d.]+ steps/s"
                         r"\s+compile\s+([\d.]+) s(?:\s+prune ([\d.]+) ms)?")
        for line in open(log, errors="replace"):
            m = pat.match(line)
            if m:
                printed.append({"device": m[1], "arch": m[2], "method": m[3], "seeds": int(m[4]),
                                "ms_per_step": float(m[5]), "compile_s": float(m[6]),
                                "prune_ms": float(m[7]) if m[7] else math.nan, "source": "log"})
    if printed:
        extra = pd.DataFrame(printed)
        have = set() if df.empty else set(zip(df.arch, df.method, df.seeds))
        extra = extra[[(a, m, s) not in have for a, m, s in zip(extra.arch, extra.method, extra.seeds)]]
        extra = extra.drop_duplicates(["arch", "method", "seeds"], keep="last")
        df = pd.concat([df, extra], ignore_index=True) if not df.empty else extra
    return df


def _print_bench(df, one) -> None:
    """The bench rows: ms per step, compile seconds, prune ms, the cost of more seeds and over MAP."""
    import pandas as pd

    print(f"\nbench ({df.device.iloc[0]}), ms per SVI step, minibatch 128:")
    print(f"{'arch':>6} {'method':>10} {'seeds':>5} {'ms/step':>9} {'compile s':>9} {'prune ms':>9} "
          f"{'x one seed':>10} {'x MAP':>6}")
    for r in df.itertuples():
        xmap = ""
        if (r.arch, "flat_map") in one.index and r.seeds == 1:
            xmap = f"{r.ms_per_step / one.loc[(r.arch, 'flat_map'), 'ms_per_step']:.2f}"
        cost = ""
        if (r.arch, r.method) in one.index and r.seeds > 1:
            cost = f"{r.ms_per_step / one.loc[(r.arch, r.method), 'ms_per_step']:.2f}"
        prune = "" if pd.isna(r.prune_ms) else f"{r.prune_ms:.2f}"
        mark = " *" if str(getattr(r, "source", "")) == "log" else ""
        print(f"{r.arch:>6} {r.method:>10} {r.seeds:>5} {r.ms_per_step:>9.3f} {r.compile_s:>9.2f} {prune:>9} "
              f"{cost:>10} {xmap:>6}{mark}")


def _verdict(ok) -> str:
    return "met" if ok else "MISSED"


def _print_targets(df, one) -> None:
    """Issue 13's targets judged on the bench rows."""
    print("\ntargets (issue 13):")
    if ("mlp", "flat_ff") in one.index:
        v = one.loc[("mlp", "flat_ff"), "ms_per_step"]
        print(f"  MLP Flat-FF {v:.3f} ms/step <= {FLAT_FF_MLP_MS}: {_verdict(v <= FLAT_FF_MLP_MS)} "
              f"(x{v / FLAT_FF_MLP_MS:.2f} of the target; authors' code on an H200: 0.38)")
    for (arch, method), r in one.iterrows():
        if method != "flat_map" and (arch, "flat_map") in one.index:
            ratio = r.ms_per_step / one.loc[(arch, "flat_map"), "ms_per_step"]
            print(f"  {arch} {method} / MAP = {ratio:.2f} <= {BAYES_OVER_MAP}: {_verdict(ratio <= BAYES_OVER_MAP)}")
    for r in df[df.seeds > 1].itertuples():
        if (r.arch, r.method) in one.index:
            ratio = r.ms_per_step / one.loc[(r.arch, r.method), "ms_per_step"]
            print(f"  {r.arch} {r.method} {r.seeds} seeds / one seed = {ratio:.2f} <= {SEEDS8_OVER_ONE}: "
                  f"{_verdict(ratio <= SEEDS8_OVER_ONE)}")
    worst = df.loc[df.compile_s.idxmax()]
    print(f"  compile at most {worst.compile_s:.2f} s ({worst.arch} {worst.method} x{worst.seeds}) <= {COMPILE_S}: "
          f"{_verdict(worst.compile_s <= COMPILE_S)}")
    if "source" in df and (df.source == "log").any():
        print("  (rows marked * come from the log: that architecture's bench was cut before writing its CSV)")


def _print_workflow(out, plan_txt) -> bool:
    """The workflow part: the plan, Snakemake's progress, the training jobs' last epochs, the tables and figures.
    Returns whether it made anything worth keeping."""
    import pandas as pd

    print("\nworkflow:")
    if plan_txt and os.path.exists(plan_txt):
        print(open(plan_txt).read().rstrip())
    wlog = os.path.join(out, "workflow.log")
    if os.path.exists(wlog):
        lines = open(wlog, errors="replace").read().splitlines()
        done = [x for x in lines if re.match(r"^\d+ of \d+ steps \(", x)]
        failed = any(x.startswith("WorkflowError") or x.startswith("Error in rule") for x in lines)
        print(f"  snakemake: {done[-1] if done else 'no job finished'}"
              f"{'; some job failed or was stopped (workflow.log)' if failed else ''}")
    metrics = sorted(glob.glob("results/warmup/**/metrics.csv", recursive=True)
                     + glob.glob("results/train/**/metrics.csv", recursive=True))
    if not metrics:
        print("  no training job finished")
    else:
        parts = []
        for f in metrics:
            try:
                parts.append(pd.read_csv(f))
            except Exception as exc:  # a half-written file of a cut job
                print(f"  unreadable {f}: {exc}")
        m = pd.concat(parts, ignore_index=True)
        last = m.sort_values("epoch").groupby(["arch", "method"]).tail(1)
        cols = [c for c in ("arch", "method", "epoch", "step", "acc", "ece", "nll", "pruned_fraction", "seconds",
                            "steps_per_s") if c in last]
        print(f"  {len(metrics)} training jobs finished; last epoch of each method:")
        print(last[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    for table in ("results/tables/final_metrics.md", "results/tables/paper_claims.md"):
        if os.path.exists(table):
            print(f"\n{table}:")
            print(open(table).read().rstrip())
    figs = sorted(glob.glob("results/figures/*.png"))
    print(f"\nfigures: {', '.join(os.path.basename(f) for f in figs) or 'none'}")
    return bool(metrics or figs)


def _print_file(path, blank=True) -> None:
    if os.path.exists(path):
        if blank:
            print()
        print(open(path).read().rstrip())


def cmd_summary(out, plan_txt=None) -> None:
    print("=" * 100)
    env = os.path.join(out, "env.txt")
    if os.path.exists(env):
        for line in open(env):
            if line.startswith(("jax.devices", "mode:", "jax ", "numpyro ", "commit ")):
                print(line.rstrip())
    df = bench_rows(out)
    if df.empty:
        print("bench: no rows")
    else:
        one = df[df.seeds == 1].set_index(["arch", "method"])
        _print_bench(df, one)
        _print_targets(df, one)
    _print_file(os.path.join(out, "xla.txt"))
    if _print_workflow(out, plan_txt):
        print(f"keep them: mkdir -p /tmp/wf {docs_dir(out)} && tar -xzf workflow.tar.gz -C /tmp/wf && cp "
              f"/tmp/wf/results/tables/*.md /tmp/wf/results/figures/* /tmp/wf/results/metrics/*.csv {docs_dir(out)}/ "
              "(as docs/gpu/2026-11-26-h100/ holds them)")
    rlog = os.path.join(out, "reproduce.log")
    if os.path.exists(rlog):
        print()
        cmd_repro(rlog)
    _print_file(os.path.join(out, "profile.txt"))


def docs_dir(out) -> str:
    """docs/gpu/<day>-<device>/ for this run's kept results: the day and the GPU (h100, h200) from env.txt."""
    day, kind = "DATE", "device"
    env = os.path.join(out, "env.txt")
    if os.path.exists(env):
        t = open(env, errors="replace").read()
        m = re.search(r"^day: (\S+)", t, flags=re.M)
        day = m.group(1) if m else day
        m = re.search(r"^device_kind: .*?NVIDIA\s+(\w+)", t, flags=re.M) or re.search(r"^device_kind: (\w+)", t,
                                                                                        flags=re.M)
        kind = m.group(1).lower() if m else kind
    return f"docs/gpu/{day}-{kind}"


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "xla":
        cmd_xla(*args)
    elif cmd == "plan":
        cmd_plan(*args)
    elif cmd == "profile":
        cmd_profile(*args)
    elif cmd == "repro":
        cmd_repro(*args)
    elif cmd == "summary":
        cmd_summary(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
