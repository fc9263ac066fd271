"""Kernels of the bench's SVI step, for tools/gpu/summary.py: per step from an XLA dump of the chunk programs
(``summary.py xla``) and from the profiler's trace of profile_step.py (``summary.py profile``)."""

from __future__ import annotations

import glob
import gzip
import json
import os
import re
from collections import Counter

_NOT_KERNELS = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast", "after-all", "partition-id",
                "replica-id", "opt-barrier", "add-dependency"}


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
