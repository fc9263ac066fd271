"""The log of `make reproduce` on the device (``summary.py repro``): its first line, the plan and its ETA, the
first training job's progress, the CUDA evidence."""

from __future__ import annotations

import os
import re

PLAN_RE = os.environ.get("REPRO_PLAN_RE", r"ETA|[Ee]stimat")
PROGRESS_RE = os.environ.get("REPRO_PROGRESS_RE", r"steps?/s|it/s")
NETWORK_NAMES = ("mlp", "lenet", "mixer", "vit")


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
        arch = next((a for a in NETWORK_NAMES if re.search(rf"(^|[/_.-]){a}([/_.-]|$)", job_name)), None)
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
