#!/usr/bin/env python3
"""Run the plan of a run and, when it estimates more than an hour, ask on a terminal whether to go on.

    python tools/confirm_cost.py [--above SECONDS] [--yes] -- PLAN COMMAND ...

`make reproduce` runs the plan (python -m bmrsparse.workflow.plan -- <the run's Snakemake arguments>) through this
tool. The plan's lines pass through as they come; its last "estimated wall time: ..." line is read. Then:

  - the plan failed: its exit status, nothing asked;
  - no estimate, or one of at most --above seconds (default 3600, one hour): exit 0, nothing asked;
  - more, and --yes (make's YES=1): says so, exit 0;
  - more, and standard input or output is not a terminal (a batch job, CI, a pipe): says so, exit 0 (nothing can
    answer);
  - more, on a terminal: shows the estimate and asks "Go on? [y/N]"; y or yes: exit 0; anything else, or end of
    input: exit 1, so make stops before training.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

#: The plan's estimate line (bmrsparse.workflow.plan.format_plan) and its durations
#: (bmrsparse.workflow.plan.duration: "S s", "M min SS s", "H h MM min").
ESTIMATE = re.compile(r"estimated wall time: (?:(?P<h>\d+) h (?P<hm>\d+) min|(?P<m>\d+) min (?P<ms>\d+) s|(?P<s>\d+) s)")
ONE_HOUR = 3600.0


def estimate_seconds(text: str) -> tuple[float, str] | None:
    """``(seconds, as printed)`` of the last estimate in the plan's output ``text``, or None."""
    found = list(ESTIMATE.finditer(text))
    if not found:
        return None
    m = found[-1]
    if m["h"] is not None:
        seconds = 3600 * int(m["h"]) + 60 * int(m["hm"])
    elif m["m"] is not None:
        seconds = 60 * int(m["m"]) + int(m["ms"])
    else:
        seconds = int(m["s"])
    return float(seconds), m.group(0)[len("estimated wall time: "):]


def run_plan(command: list[str]) -> tuple[int, str]:
    """Run the plan, its stdout passed through line by line (and kept), its stderr straight through."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
    kept = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        kept.append(line)
    return proc.wait(), "".join(kept)


def decide(seconds: float | None, shown: str, *, above: float, yes: bool, terminal: bool, ask=input) -> int:
    """The exit status: 0 go on, 1 stop (see the module docstring); prints what it decided."""
    if seconds is None or seconds <= above:
        return 0
    hours = f"{above / 3600:g} h"
    if yes:
        print(f"bmrsparse: the plan estimates {shown} (more than {hours}); YES=1: going on without asking", flush=True)
        return 0
    if not terminal:
        print(f"bmrsparse: the plan estimates {shown} (more than {hours}); not a terminal, so going on without "
              "asking", flush=True)
        return 0
    try:
        answer = ask(f"bmrsparse: the plan estimates {shown} on this machine (more than {hours}). Go on? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return 0
    print("bmrsparse: stopped before training. Rerun with YES=1 to go on without the question, or run a subset "
          "(SMK_ARGS=\"--config 'archs=[mlp]'\") or another profile (CONFIG=...).", flush=True)
    return 1


def main(argv: list[str]) -> int:
    args = list(argv[1:])
    command: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, command = args[:cut], args[cut + 1:]
    p = argparse.ArgumentParser(prog="confirm_cost.py", usage="%(prog)s [-h] [--above SECONDS] [--yes] -- PLAN ...",
                                description=__doc__.split("\n\n", 1)[0],
                                epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--above", type=float, default=ONE_HOUR, help="ask above this many estimated seconds (3600)")
    p.add_argument("--yes", action="store_true", help="go on without asking (make's YES=1)")
    a = p.parse_args(args)
    if not command:
        p.error("the plan's command goes after --")
    code, out = run_plan(command)
    if code != 0:
        return code
    found = estimate_seconds(out)
    seconds, shown = found if found else (None, "")
    terminal = sys.stdin.isatty() and sys.stdout.isatty()
    return decide(seconds, shown, above=a.above, yes=a.yes, terminal=terminal)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
