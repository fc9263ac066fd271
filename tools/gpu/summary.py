"""Helpers of tools/gpu/measure.sh (standard library + pandas + yaml only; runs on the device machine).

    summary.py xla DUMP_DIR                      kernels per SVI step from an XLA dump of the bench's chunk programs
    summary.py plan BENCH_CSV CONFIG SCHEDULE AVAIL_S ARCHS METHODS OVERLAY
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
import gzip
import json
import math
import os
import re
import sys
from collections import Counter

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

_NOT_KERNELS = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast", "after-all", "partition-id",
                "replica-id", "opt-barrier", "add-dependency"}


# ---------------------------------------------------------------------------------------------------------------
def _opcode(line: str):
    """(opcode, line) of an HLO instruction line, or None. The result type may be a tuple with comments."""
    m = re.match(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*", line)
    if not m:
        return None
    i = m.end()
    if line[i:i + 1] == "(":  # tuple type: skip to the matching parenthesis
        depth = 0
        for j in range(i, len(line)):
            depth += {"(": 1, ")": -1}.get(line[j], 0)
            if depth == 0:
                i = j + 1
                break
    else:
        i = line.find(" ", i)
    m = re.match(r"\s*([\w\-]+)\(", line[i:])
    return m.group(1) if m else None


def parse_hlo(text: str):
    """(entry computation name, {computation name: [(opcode, line)]}) of an HLO text dump."""
    comps: dict[str, list] = {}
    entry = current = None
    for line in text.splitlines():
        if not line.startswith((" ", "}")) and line.rstrip().endswith("{"):
            head = re.match(r"^(ENTRY\s+)?%?([\w.\-]+)", line)
            if head:
                current = head.group(2)
                comps[current] = []
                if head.group(1):
                    entry = current
            continue
        if line.startswith("}"):
            current = None
            continue
        if current is not None:
            op = _opcode(line)
            if op:
                comps[current].append((op, line))
    return entry, comps


def kernel_ops(comps, name, stack=()) -> Counter:
    """Work-launching ops of one run of computation `name`: its own, plus call/conditional callees and nested
    while loops times their known trip count (fusion internals are one launch)."""
    if name in stack or name not in comps:
        return Counter()
    count = Counter()
    for op, line in comps[name]:
        if op in _NOT_KERNELS:
            continue
        if op == "while":
            body = re.search(r"body=%?([\w.\-]+)", line)
            trips = re.search(r'"known_trip_count":\{"n":"(\d+)"', line)
            if body:
                inner = kernel_ops(comps, body.group(1), stack + (name,))
                n = int(trips.group(1)) if trips else 1
                for k, v in inner.items():
                    count[k] += n * v
            count["while"] += 1
            continue
        if op in ("call", "conditional"):
            for callee in re.findall(r"(?:to_apply|calls)=%?([\w.\-]+)", line):
                count += kernel_ops(comps, callee, stack + (name,))
            m = re.search(r"branch_computations=\{([^}]*)\}", line)
            for callee in (m.group(1).split(",") if m else []):
                count += kernel_ops(comps, callee.strip().lstrip("%"), stack + (name,))
        count[op] += 1
    return count


def step_ops(path: str):
    """Work-launching ops per SVI step (a Counter) of one optimized chunk program, or None: the step is the entry
    computation's largest while-loop body (the chunk's fori_loop)."""
    entry, comps = parse_hlo(open(path).read())
    loops = [line for op, line in comps.get(entry, []) if op == "while"]
    bodies = [m.group(1) for m in (re.search(r"body=%?([\w.\-]+)", x) for x in loops) if m]
    if not bodies:
        return None
    return max((kernel_ops(comps, b) for b in bodies), key=lambda c: sum(c.values()))


def chunk_programs(dump_dir: str):
    files = sorted(glob.glob(os.path.join(dump_dir, "*after_optimizations.txt")))
    return [f for f in files if "chunk" in os.path.basename(f)]


def cmd_xla(dump_dir: str) -> None:
    files = chunk_programs(dump_dir)
    if not files:
        print(f"xla: no optimized chunk programs in {dump_dir} (the dump failed or was cut)")
        return
    print("XLA dump (the bench's MLP chunk programs, in compile order: flat_map, then flat_ff):")
    for f in files:
        counts = step_ops(f)
        if counts is None:
            print(f"  {os.path.basename(f)}: no while loop in the entry computation")
            continue
        top = ", ".join(f"{op} {n}" for op, n in counts.most_common(8))
        print(f"  {os.path.basename(f)}: {sum(counts.values())} work-launching ops per SVI step, nested loops "
              f"unrolled by trip count ({top})")


# ---------------------------------------------------------------------------------------------------------------
def trace_kernels(trace_dir: str):
    """(device kernel events {name: [count, total µs]}, device name) of the newest ``*.trace.json.gz`` under
    ``trace_dir`` (jax.profiler's Chrome-trace file); ({}, None) when it holds no device (GPU) events, as on CPU."""
    files = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True), key=os.path.getmtime)
    if not files:
        return None, None
    events = json.load(gzip.open(files[-1])).get("traceEvents", [])
    procs = {e["pid"]: e.get("args", {}).get("name", "") for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    device = {pid for pid, name in procs.items() if name.startswith("/device:")}
    kernels: dict[str, list] = {}
    for e in events:
        if e.get("ph") == "X" and e.get("pid") in device:
            k = kernels.setdefault(e.get("name", "?"), [0, 0.0])
            k[0] += 1
            k[1] += float(e.get("dur", 0.0))
    names = sorted({procs[p] for p in device})
    return kernels, (", ".join(names) or None)


def cmd_profile(profile_dir: str) -> None:
    """One block per profiled step (PROFILE_DIR/<arch>-x<seeds>/run.json, xla/, trace/), then 8 seeds over one."""
    runs = []
    for d in sorted(glob.glob(os.path.join(profile_dir, "*", "run.json"))):
        r = json.load(open(d))
        r["dir"] = os.path.dirname(d)
        runs.append(r)
    missing = sorted(set(os.path.basename(x.rstrip("/")) for x in glob.glob(os.path.join(profile_dir, "*-x*/")))
                     - {os.path.basename(r["dir"]) for r in runs})
    print("profile (issue 22): one SVI step, XLA ops from the dump, kernels from the jax.profiler trace")
    if not runs:
        print(f"  no finished profile run in {profile_dir}")
    for r in runs:
        print(f"\n{r['arch']} {r['method']} x{r['seeds']} ({r['device']}, step_loop {r.get('step_loop', '?')}"
              f"{', tiny' if r.get('tiny') else ''}): {r['ms_per_step']:.3f} ms/step, compile {r['compile_s']:.2f} s")
        # this run's chunk program in the XLA dump (profile_step.py names it; a copy keeps the base name)
        files = [f if os.path.exists(f) else os.path.join(profile_dir, "xla", os.path.basename(f))
                 for f in r.get("xla", [])]
        files = [f for f in files if os.path.exists(f)]
        counts = step_ops(files[-1]) if files else None
        r["ops"] = sum(counts.values()) if counts else None
        if counts:
            top = ", ".join(f"{op} {n}" for op, n in counts.most_common(8))
            print(f"  XLA: {r['ops']} work-launching ops per SVI step ({top})")
        else:
            print("  XLA: no optimized chunk program in the dump")
        kernels, device = trace_kernels(os.path.join(r["dir"], "trace"))
        if kernels is None:
            print("  trace: none written")
        elif not kernels:
            print("  trace: no device kernel events (CPU: XLA's CPU backend runs no device kernels)")
        else:
            n = max(1, int(r["steps"]))
            launches = sum(c for c, _ in kernels.values())
            busy = sum(t for _, t in kernels.values())
            r["kernels"] = launches / n
            print(f"  trace ({device}): {launches / n:.0f} kernel launches per step, {busy / n / 1e3:.3f} ms of "
                  f"kernel time per step ({busy / n / 1e3 / r['ms_per_step']:.0%} of the step), "
                  f"{len(kernels)} distinct kernels; largest by time per step:")
            for name, (c, t) in sorted(kernels.items(), key=lambda kv: -kv[1][1])[:10]:
                print(f"    {t / n:9.1f} us  x{c / n:5.1f}  {name[:110]}")
    by = {(r["arch"], r["seeds"]): r for r in runs}
    lines = []
    for (arch, seeds), r in sorted(by.items()):
        one = by.get((arch, 1))
        if seeds > 1 and one:
            extra = ""
            if r.get("ops") and one.get("ops"):
                extra += f", XLA ops x{r['ops'] / one['ops']:.2f}"
            if r.get("kernels") and one.get("kernels"):
                extra += f", kernel launches x{r['kernels'] / one['kernels']:.2f}"
            lines.append(f"  {arch} {r['method']}: {seeds} seeds / one seed = "
                         f"{r['ms_per_step'] / one['ms_per_step']:.2f} (goal 1.5){extra}")
    if lines:
        print("\nseeds:")
        print("\n".join(lines))
    if missing:
        print(f"\nnot finished (cut or failed; see measure.log): {', '.join(missing)}")


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
PLAN_RE = os.environ.get("REPRO_PLAN_RE", r"ETA|[Ee]stimat")
PROGRESS_RE = os.environ.get("REPRO_PROGRESS_RE", r"steps?/s|it/s")
ARCHS = ("mlp", "lenet", "mixer", "vit")


def _seconds(text: str):
    """Durations written in a line (``1 h 20 min``, ``12 min``, ``45 s``, ``0:12:30``), in seconds, in order."""
    out = []
    for m in re.finditer(r"(\d+):(\d\d):(\d\d)|(\d+(?:\.\d+)?)\s*(h|hours?|min|minutes?|m|s|sec|seconds?)\b", text):
        if m.group(1):
            out.append(3600 * int(m.group(1)) + 60 * int(m.group(2)) + int(m.group(3)))
        else:
            unit = m.group(5)[0]
            out.append(float(m.group(4)) * {"h": 3600, "m": 60, "s": 1}[unit])
    return out


def cmd_repro(log: str) -> None:
    """`make reproduce` on the device (part 5 of measure.sh): per attempt, the first lines of make's output, the
    plan lines, the CUDA evidence, the first training job's progress and the measured rate against the plan."""
    if not os.path.exists(log):
        print(f"reproduce: no log {log}")
        return
    text = open(log, errors="replace").read()
    blocks = re.split(r"^==== attempt (\w+): make .*$", text, flags=re.M)
    if len(blocks) < 3:
        print("reproduce: no attempt ran" + (f" ({text.strip()[:200]})" if text.strip() else ""))
        return
    print("make reproduce on the device (issue 22; the carried wheels only):")
    for mode, body in zip(blocks[1::2], blocks[2::2]):
        result = re.search(r"^==== attempt \w+: (plan line after .*)$", body, flags=re.M)
        m = re.search(r"^==== attempt " + mode + r": make .*\((.*)\)$", text, flags=re.M)
        head_line = m.group(1) if m else "?"
        print(f"\n  attempt {mode} ({head_line}): {result.group(1) if result else 'no result line'}")
        make_out, _, job = body.partition("\n==== job log ")
        make_lines = [x for x in make_out.splitlines() if x.strip() and not x.startswith("==== ")]
        print("    first lines of make's output:")
        for x in make_lines[:4]:
            print(f"      {x[:150]}")
        plan = [x for x in make_lines if re.search(PLAN_RE, x)]
        print(f"    plan lines ({len(plan)}):" if plan else "    plan lines: none")
        for x in plan[:12]:
            print(f"      {x[:150]}")
        errors = [x for x in make_lines if re.search(r"ERROR|Error|error:|No matching distribution|Could not find", x)]
        for x in errors[:4]:
            print(f"    error: {x[:150]}")
        job_name, _, job_text = job.partition("\n")
        job_lines = job_text.splitlines()
        cuda = [x for x in make_lines + job_lines if re.search(r"(?i)cuda|\bgpu\b|nvidia", x)]
        print(f"    CUDA/GPU lines ({len(cuda)}):" if cuda else "    CUDA/GPU lines: none")
        for x in cuda[:6]:
            print(f"      {x[:150]}")
        progress = [x for x in job_lines if re.search(PROGRESS_RE, x)]
        if not progress:
            continue
        print(f"    first training job: {job_name.strip()}; {len(progress)} progress lines, first and last:")
        for x in (progress[0], progress[-1]) if len(progress) > 1 else progress:
            print(f"      {x[:150]}")
        rates = [float(m.group(1)) for x in progress
                 for m in [re.search(r"([\d.]+)\s*(?:steps?/s|it/s)", x)] if m]
        if not rates:
            continue
        rate = rates[-1]
        arch = next((a for a in ARCHS if re.search(rf"(^|[/_.-]){a}([/_.-]|$)", job_name)), None)
        print(f"    measured: {rate:.1f} steps/s = {1e3 / rate:.3f} ms/step (last progress line"
              f"{', ' + arch if arch else ''})")
        assumed = None
        for x in plan:
            if arch and re.search(rf"\b{arch}\b", x):
                m = re.search(rf"\b{arch}\b\D*?([\d.]+)\s*ms", x)
                if m:
                    assumed = float(m.group(1))
                    break
        if assumed:
            print(f"    the plan assumed {assumed:.3f} ms/step for {arch}: measured / assumed = "
                  f"{(1e3 / rate) / assumed:.2f} (the plan's ETA scales by about this for {arch}'s jobs)")
        # the ETA: the durations after "ETA" up to the next parenthesis or comma, added ("1 h 10 min")
        etas = [sum(d) for x in plan if "ETA" in x for d in [_seconds(re.split(r"[(,;]", x.split("ETA", 1)[1])[0])]
                if d]
        if etas:
            print(f"    the plan's ETA: {etas[0]:.0f} s ({etas[0] / 3600:.2f} h)"
                  + (f"; at the measured rate about {etas[0] * (1e3 / rate) / assumed:.0f} s" if assumed else
                     "; no per-network ms/step in the plan to scale it by"))



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


def cmd_summary(out, plan_txt=None) -> None:
    import pandas as pd

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
        print("\ntargets (issue 13):")

        def verdict(ok):
            return "met" if ok else "MISSED"

        if ("mlp", "flat_ff") in one.index:
            v = one.loc[("mlp", "flat_ff"), "ms_per_step"]
            print(f"  MLP Flat-FF {v:.3f} ms/step <= {FLAT_FF_MLP_MS}: {verdict(v <= FLAT_FF_MLP_MS)} "
                  f"(x{v / FLAT_FF_MLP_MS:.2f} of the target; authors' code on an H200: 0.38)")
        for (arch, method), r in one.iterrows():
            if method != "flat_map" and (arch, "flat_map") in one.index:
                ratio = r.ms_per_step / one.loc[(arch, "flat_map"), "ms_per_step"]
                print(f"  {arch} {method} / MAP = {ratio:.2f} <= {BAYES_OVER_MAP}: {verdict(ratio <= BAYES_OVER_MAP)}")
        for r in df[df.seeds > 1].itertuples():
            if (r.arch, r.method) in one.index:
                ratio = r.ms_per_step / one.loc[(r.arch, r.method), "ms_per_step"]
                print(f"  {r.arch} {r.method} {r.seeds} seeds / one seed = {ratio:.2f} <= {SEEDS8_OVER_ONE}: "
                      f"{verdict(ratio <= SEEDS8_OVER_ONE)}")
        worst = df.loc[df.compile_s.idxmax()]
        print(f"  compile at most {worst.compile_s:.2f} s ({worst.arch} {worst.method} x{worst.seeds}) <= {COMPILE_S}: "
              f"{verdict(worst.compile_s <= COMPILE_S)}")
        if "source" in df and (df.source == "log").any():
            print("  (rows marked * come from the log: that architecture's bench was cut before writing its CSV)")
    xla = os.path.join(out, "xla.txt")
    if os.path.exists(xla):
        print()
        print(open(xla).read().rstrip())
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
    if metrics or figs:
        print(f"keep them: mkdir -p /tmp/wf {docs_dir(out)} && tar -xzf workflow.tar.gz -C /tmp/wf && cp "
              f"/tmp/wf/results/tables/*.md /tmp/wf/results/figures/* /tmp/wf/results/metrics/*.csv {docs_dir(out)}/ "
              "(as docs/gpu/2026-11-26-h100/ holds them)")
    rlog = os.path.join(out, "reproduce.log")
    if os.path.exists(rlog):
        print()
        cmd_repro(rlog)
    prof = os.path.join(out, "profile.txt")
    if os.path.exists(prof):
        print()
        print(open(prof).read().rstrip())


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
    if len(argv) >= 2 and argv[1] in ("-h", "--help"):
        print("usage: summary.py {xla|plan|profile|repro|summary} ARGS ...\n\n" + __doc__)
        return
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
