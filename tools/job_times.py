"""Per-job start and end times of a Snakemake run, read from its console log, as CSV.

    python tools/job_times.py LOG > jobs.csv      # rule, wildcards, start_s, end_s, seconds (from the first job)
    python tools/job_times.py LOG --rules         # seconds of work per rule, and the wall time

LOG is what `make reproduce` printed (Snakemake's lines "[date]" + "rule|localrule NAME:" ... "jobid: N" and
"[date]" + "Finished jobid: N"). The docs' measured runs (docs/quick-profile/<date>/jobs.csv) come from it.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from datetime import datetime

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?rule (\w+):$")
_FIELD = re.compile(r"^\s+(jobid|wildcards): (.*)$")
_DONE = re.compile(r"^Finished jobid: (\d+)")


def jobs(lines) -> list[dict]:
    """``[{rule, wildcards, start, end}]`` (datetimes) of every finished job of the log's lines."""
    stamp, current, started, out = None, None, {}, []
    for line in lines:
        line = line.rstrip("\n")
        if m := _STAMP.match(line):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := _RULE.match(line):
            current = {"rule": m.group(1), "wildcards": "", "start": stamp}
        elif current is not None and (m := _FIELD.match(line)):
            if m.group(1) == "jobid":
                started[m.group(2).strip()] = current
            else:
                current["wildcards"] = "; ".join(p.strip() for p in m.group(2).split(","))
        elif m := _DONE.match(line):
            job = started.pop(m.group(1), None)
            if job is not None:
                out.append({**job, "end": stamp})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    ap.add_argument("--rules", action="store_true", help="seconds of work per rule and the wall time instead")
    args = ap.parse_args(argv)
    with open(args.log, errors="replace") as f:
        done = jobs(f)
    if not done:
        print(f"{args.log}: no finished Snakemake job found", file=sys.stderr)
        return 1
    t0 = min(j["start"] for j in done)
    if args.rules:
        per: dict[str, list[float]] = {}
        for j in done:
            per.setdefault(j["rule"], []).append((j["end"] - j["start"]).total_seconds())
        for rule, secs in sorted(per.items(), key=lambda kv: -sum(kv[1])):
            print(f"{rule:24s} {len(secs):3d} jobs {sum(secs):7.0f} s")
        wall = (max(j["end"] for j in done) - t0).total_seconds()
        work = sum(sum(s) for s in per.values())
        print(f"wall {wall:.0f} s ({wall / 60:.1f} min) for {len(done)} jobs, {work:.0f} s of work")
        return 0
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["rule", "wildcards", "start_s", "end_s", "seconds"])
    for j in sorted(done, key=lambda j: (j["start"], j["rule"])):
        s, e = (j["start"] - t0).total_seconds(), (j["end"] - t0).total_seconds()
        w.writerow([j["rule"], j["wildcards"], f"{s:.0f}", f"{e:.0f}", f"{e - s:.0f}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
