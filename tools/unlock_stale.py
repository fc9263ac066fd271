#!/usr/bin/env python3
"""Remove the lock that a killed Snakemake left in a workflow folder, if no Snakemake works there any more.

    python tools/unlock_stale.py [FOLDER]      # FOLDER: the workflow's working directory (default: .)

Snakemake locks its working directory (.snakemake/locks/) while it runs; a head process killed with SIGKILL (or a
power loss) leaves the lock behind and the next run stops with "Directory cannot be locked". This script
  - does nothing when there is no lock (exit 0);
  - refuses when a Snakemake process on this machine works in FOLDER (its cwd or --directory), naming its pid
    (exit 1): wait for it or stop it;
  - otherwise removes the lock files (what `snakemake --unlock` does) and says so (exit 0).
`make reproduce` and `make report` run it first. It sees only this machine's processes: if a Snakemake may be
running in the same folder from another host (a shared file system), check that host first.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _cmdline(pid: str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _workdir(pid: str, argv: list[str]) -> Path | None:
    """The folder a Snakemake process works in: its --directory/-d argument, else its cwd."""
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
    for i, arg in enumerate(argv):
        value = None
        if arg in ("-d", "--directory") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--directory="):
            value = arg.split("=", 1)[1]
        if value:
            return (cwd / value).resolve()
    return cwd.resolve()


def live_snakemakes(folder: Path) -> list[int]:
    """Pids of Snakemake head processes on this machine that work in ``folder``."""
    folder = folder.resolve()
    mine = {os.getpid(), os.getppid()}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        argv = [a for a in _cmdline(entry.name) if a]
        if not argv or not any(Path(a).name == "snakemake" or a == "snakemake" for a in argv[:3]):
            continue
        if "--unlock" in argv:
            continue
        # Jobs started by Snakemake (python -m snakemake ... as a job runner) also carry "snakemake" but work in
        # the same folder under a live head, so they count as live as well.
        if _workdir(entry.name, argv) == folder:
            found.append(int(entry.name))
    return sorted(found)


def main(argv: list[str]) -> int:
    folder = Path(argv[1] if len(argv) > 1 else ".").resolve()
    locks = sorted((folder / ".snakemake" / "locks").glob("*.lock"))
    if not locks:
        return 0
    live = live_snakemakes(folder)
    if live:
        print(f"unlock_stale: {folder} is locked by a running Snakemake (pid {', '.join(map(str, live))}); "
              "wait for it to finish or stop it, then rerun", file=sys.stderr)
        return 1
    for lock in locks:
        lock.unlink(missing_ok=True)
    print(f"unlock_stale: removed the lock a killed Snakemake left in {folder} (no Snakemake process on this "
          "machine works there); the run resumes where it stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
