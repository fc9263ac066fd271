#!/usr/bin/env python3
"""Remove the lock that a killed Snakemake left in a workflow folder, only once the run that held it is gone.

    python tools/unlock_stale.py [--host NAME] [FOLDER]               # FOLDER: the workflow's folder (default: .)
    python tools/unlock_stale.py [--host NAME] --run FOLDER -- CMD ... # run CMD (Snakemake) as the folder's owner

Snakemake locks its working directory (.snakemake/locks/) while it runs; a head process killed with SIGKILL (or a
power loss) leaves the lock behind and the next run stops with "Directory cannot be locked". On a shared file
system the folder may be used from several hosts, and a process list shows only this host's processes, so the run
that holds the lock is recorded: ``--run`` writes the *owner record* ``.snakemake/bmrsparse-owner.json`` (host,
pid and start time of this wrapper and of CMD, the command, when) before CMD locks the folder, and removes it when
CMD ends. `make reproduce` and `make report` start Snakemake this way, after a plain call that

  - does nothing when there is neither a lock nor an owner record (exit 0);
  - refuses when the owner record names another host, naming that host and the pid (exit 1): only that host can
    tell whether the run is gone (run `make unlock` there);
  - refuses when the owner record's process (the wrapper or CMD: same pid *and* start time, so a reused pid does
    not count) is alive on this host, or when any Snakemake on this host works in FOLDER (exit 1);
  - otherwise, the owner being provably gone, removes the lock files and the record and says so (exit 0);
  - with a lock but no owner record (a Snakemake started outside make), removes the lock only when no Snakemake on
    this host works in FOLDER, and says that a run on another host could not be seen (exit 0).

``--host`` (or ``$BMRSPARSE_HOSTNAME``) names this host instead of ``socket.gethostname()``: tests, or a cluster whose
login nodes share a folder under other names.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

#: The owner record, next to Snakemake's own lock folder.
OWNER = Path(".snakemake") / "bmrsparse-owner.json"
HOST_ENV = "BMRSPARSE_HOSTNAME"


class Refused(Exception):
    """The folder's lock may belong to a live run: the message says whose."""


def this_host(host: str | None = None) -> str:
    return host or os.environ.get(HOST_ENV) or socket.gethostname()


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """An identity of process ``pid`` that a later process with the same pid does not share (boot id and start time
    in clock ticks since boot), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 3, starttime field 22
    if fields[0] == "Z":  # a zombie has finished
        return None
    return f"{_boot_id()}:{fields[19]}"


def _alive(pid, start) -> bool:
    return pid is not None and start is not None and process_start(pid) == start


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
    """Pids of Snakemake processes on this host that work in ``folder``."""
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


def read_owner(folder: Path) -> dict | None:
    """The owner record, None without one; a record that cannot be read is refused (it may be a live run's)."""
    path = folder / OWNER
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        owner = json.loads(text)
        if not isinstance(owner, dict) or not owner.get("host") or "pid" not in owner:
            raise ValueError("no host or pid")
    except ValueError as e:
        raise Refused(f"the owner record {path} cannot be read ({e}); if no run uses {folder} any more, delete it "
                      "and rerun") from None
    return owner


def _describe(owner: dict) -> str:
    pids = [str(owner["pid"])] + ([f"Snakemake {owner['child_pid']}"] if owner.get("child_pid") else [])
    return f"host {owner['host']} (pid {', '.join(pids)}, started {owner.get('started', '?')})"


def _locks(folder: Path) -> list[Path]:
    return sorted((folder / ".snakemake" / "locks").glob("*.lock"))


def clear(folder: Path, host: str | None = None) -> str | None:
    """Remove a stale lock (and owner record) of ``folder``; returns what was done (None: nothing to do).

    Raises :class:`Refused` when the lock or record may belong to a live run (see the module docstring).
    """
    folder = folder.resolve()
    host = this_host(host)
    owner = read_owner(folder)
    locks = _locks(folder)
    if owner is not None:
        if owner["host"] != host:
            raise Refused(
                f"{folder} is used by a run on {_describe(owner)}, not on this host ({host}); whether it is gone "
                f"can only be seen there: run `make unlock` on {owner['host']}. If that host is down for good, "
                f"delete {folder / OWNER} and run `.venv/bin/snakemake --unlock`"
            )
        live = [p for p, s in ((owner.get("pid"), owner.get("start")),
                               (owner.get("child_pid"), owner.get("child_start"))) if _alive(p, s)]
        if live:
            raise Refused(f"{folder} is locked by a run on this host (pid {', '.join(map(str, live))}, started "
                          f"{owner.get('started', '?')}); wait for it to finish or stop it, then rerun")
    live = live_snakemakes(folder)
    if live and locks:
        raise Refused(f"{folder} is locked by a running Snakemake (pid {', '.join(map(str, live))}); wait for it to "
                      "finish or stop it, then rerun")
    for lock in locks:
        lock.unlink(missing_ok=True)
    if owner is not None:
        (folder / OWNER).unlink(missing_ok=True)
        if locks:
            return (f"removed the lock a killed Snakemake left in {folder} (its run, {_describe(owner)}, is gone); "
                    "the run resumes where it stopped")
        return f"removed the owner record of a run that is gone ({_describe(owner)})"
    if locks:
        return (f"removed the lock a killed Snakemake left in {folder}: it has no owner record (a Snakemake started "
                "outside make), and no Snakemake process on this host works there; a run on another host that "
                "shares this folder cannot be seen from here")
    return None


def _write_new(path: Path, record: dict) -> None:
    """Create ``path`` holding ``record``; FileExistsError when it exists (another run is starting)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(record))


def _replace(path: Path, record: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def run(folder: Path, cmd: list[str], host: str | None = None) -> int:
    """Run ``cmd`` as the owner of ``folder``: record host and processes, wait, remove the record; its exit code."""
    folder = folder.resolve()
    clear(folder, host)
    path = folder / OWNER
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"host": this_host(host), "pid": os.getpid(), "start": process_start(os.getpid()),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "folder": str(folder), "command": cmd}
    try:
        _write_new(path, record)
    except FileExistsError:
        raise Refused(f"another run is starting in {folder} ({_describe(read_owner(folder) or record)})") from None
    try:
        # Ctrl-C reaches the whole foreground group: Snakemake handles it (and stops its jobs); this wrapper waits.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        child = subprocess.Popen(cmd, cwd=folder)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
        _replace(path, dict(record, child_pid=child.pid, child_start=process_start(child.pid)))
        code = child.wait()
        signal.signal(signal.SIGINT, previous)
    finally:
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass
    return code if code >= 0 else 128 - code


def main(argv: list[str]) -> int:
    args = list(argv[1:])
    host = None
    if args[:1] == ["--host"] and len(args) >= 2:
        host, args = args[1], args[2:]
    try:
        if args[:1] == ["--run"]:
            if len(args) < 4 or args[2] != "--":
                print("usage: unlock_stale.py [--host NAME] --run FOLDER -- CMD ...", file=sys.stderr)
                return 2
            return run(Path(args[1]), args[3:], host)
        if len(args) > 1:
            print("usage: unlock_stale.py [--host NAME] [FOLDER]", file=sys.stderr)
            return 2
        done = clear(Path(args[0] if args else "."), host)
    except Refused as e:
        print(f"unlock_stale: {e}", file=sys.stderr)
        return 1
    if done:
        print(f"unlock_stale: {done}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
