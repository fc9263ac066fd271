#!/usr/bin/env python3
"""Remove the lock that a killed Snakemake left in a workflow folder, only once the run that held it is gone.

    python tools/unlock_stale.py [--host NAME] [FOLDER]               # FOLDER: the workflow's folder (default: .)
    python tools/unlock_stale.py [--host NAME] --run FOLDER -- CMD ... # run CMD (Snakemake) as the folder's owner

Snakemake locks its working directory (.snakemake/locks/) while it runs; a head process killed with SIGKILL (or a
power loss) leaves the lock behind and the next run stops with "Directory cannot be locked". On a shared file
system the folder may be used from several hosts, and a process list shows only this host's processes, so the run
that holds the lock is recorded: ``--run`` writes the *owner record* ``.snakemake/bmrsparse-owner.json`` (host
name, the machine's identity, pid and start time of this wrapper and of CMD, the command, when) before CMD locks
the folder, and removes it when CMD ends. `make reproduce` and `make report` start Snakemake this way, after a
plain call that

  - does nothing when there is neither a lock nor an owner record (exit 0);
  - refuses when the owner record names another host, naming that host and the pid (exit 1): only that host can
    tell whether the run is gone (run `make unlock` there);
  - refuses, too, when the record names this host's name but the host cannot be proven to be this machine: another
    machine id (``/etc/machine-id``), or, where no machine id is known, another boot time (exit 1);
  - refuses when the owner record's process (the wrapper or CMD: same pid *and* start time, so a reused pid does
    not count) is alive on this host, or when any Snakemake on this host works in FOLDER or in a folder that cannot
    be read (another user's process) (exit 1);
  - otherwise, the owner being provably gone, removes the lock files and the record and says so (exit 0);
  - with a lock but no owner record (a Snakemake started outside make), removes the lock only when no Snakemake on
    this host works in FOLDER, and says that a run on another host could not be seen (exit 0).

Processes are listed through psutil (Linux, macOS, the BSDs, Windows), never by reading ``/proc``.
``--host`` (or ``$BMRSPARSE_HOSTNAME``) names this host instead of ``socket.gethostname()``: tests, or a cluster whose
login nodes share a folder under other names.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

#: The owner record, next to Snakemake's own lock folder.
OWNER = Path(".snakemake") / "bmrsparse-owner.json"
HOST_ENV = "BMRSPARSE_HOSTNAME"


class Refused(Exception):
    """The folder's lock may belong to a live run: the message says whose."""


def this_host(host: str | None = None) -> str:
    return host or os.environ.get(HOST_ENV) or socket.gethostname()


#: Where a machine's identity is read (systemd and D-Bus write them; stable across reboots, unique per install).
MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
#: Prefix of a process identity written by this version (start time from psutil); a record with another format
#: (an older version's) cannot prove its process gone.
START_FORMAT = "ct:"


def machine_id() -> str | None:
    """This machine's id from :data:`MACHINE_ID_FILES`, or None where there is none (macOS, minimal containers)."""
    for name in MACHINE_ID_FILES:
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return None


def this_machine() -> dict:
    """What the owner record stores to prove later that a run's host is this machine: its id and boot time."""
    return {"machine": machine_id(), "boot": psutil.boot_time()}


def _same_machine(owner: dict) -> str | None:
    """None when the record's host is provably this machine, else why not."""
    mine = this_machine()
    if owner.get("machine") and mine["machine"]:
        if owner["machine"] == mine["machine"]:
            return None
        return f"its machine id {owner['machine']} is not this machine's ({mine['machine']})"
    boot = owner.get("boot")
    if isinstance(boot, (int, float)) and abs(boot - mine["boot"]) < 2.0:
        return None  # the same name and the same boot second: this machine since it last booted
    return ("the record has no machine id to compare"
            + (" and another boot time" if isinstance(boot, (int, float)) else " nor a boot time"))


def process_start(pid: int) -> str | None:
    """An identity of process ``pid`` that a later process with the same pid does not share (its start time), or
    None when there is no such process (or only a zombie, which has finished)."""
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return f"{START_FORMAT}{proc.create_time():.3f}"
    except (psutil.NoSuchProcess, ValueError, TypeError):
        return None
    except psutil.AccessDenied:  # it exists; its start time cannot be read here
        return "unknown"


def _alive(pid, start) -> bool:
    """Whether the record's process may still run: it does when the same pid has the same start time, or when the
    start time of a live pid cannot be compared (an older record's format, a process whose start time is hidden)."""
    if pid is None:
        return False
    now = process_start(pid)
    if now is None:
        return False
    if not (isinstance(start, str) and start.startswith(START_FORMAT)) or now == "unknown":
        return True  # cannot be told apart from the recorded process: count it as alive
    return now == start


def _workdir(proc: psutil.Process, argv: list[str]) -> Path | None:
    """The folder a Snakemake process works in: its --directory/-d argument (absolute), else relative to its cwd;
    None when that cannot be read (another user's process)."""
    value = None
    for i, arg in enumerate(argv):
        if arg in ("-d", "--directory") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--directory="):
            value = arg.split("=", 1)[1]
    if value and os.path.isabs(value):
        return Path(value).resolve()
    try:
        cwd = Path(proc.cwd())
    except (psutil.Error, OSError):
        return None
    return (cwd / value).resolve() if value else cwd.resolve()


def live_snakemakes(folder: Path) -> list[int]:
    """Pids of Snakemake processes on this host that work in ``folder``, or whose folder cannot be read."""
    folder = folder.resolve()
    mine = {os.getpid(), os.getppid()}
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        info = proc.info
        if info["pid"] in mine or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        argv = [a for a in (info["cmdline"] or []) if a]
        if not argv or not any(Path(a).name == "snakemake" or a == "snakemake" for a in argv[:3]):
            continue
        if "--unlock" in argv:
            continue
        # Jobs started by Snakemake (python -m snakemake ... as a job runner) also carry "snakemake" but work in
        # the same folder under a live head, so they count as live as well.
        where = _workdir(proc, argv)
        if where is None or where == folder:
            found.append(info["pid"])
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
        other = _same_machine(owner)
        if other:
            raise Refused(
                f"{folder} is used by a run on {_describe(owner)}, a host named like this one ({host}) that cannot "
                f"be proven to be this machine: {other}. Run `make unlock` on the machine that started it; if no "
                f"run uses {folder} any more, delete {folder / OWNER} and run `.venv/bin/snakemake --unlock`"
            )
        live = [p for p, s in ((owner.get("pid"), owner.get("start")),
                               (owner.get("child_pid"), owner.get("child_start"))) if _alive(p, s)]
        if live:
            raise Refused(f"{folder} is locked by a run on this host (pid {', '.join(map(str, live))}, started "
                          f"{owner.get('started', '?')}); wait for it to finish or stop it, then rerun")
    live = live_snakemakes(folder)
    if live and locks:
        raise Refused(f"{folder} is locked and a Snakemake runs on this host in it or in a folder that cannot be read "
                      f"(pid {', '.join(map(str, live))}); wait for it to finish or stop it, then rerun")
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
    record = {"host": this_host(host), **this_machine(), "pid": os.getpid(), "start": process_start(os.getpid()),
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="unlock_stale.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s [-h] [--host NAME] [FOLDER]\n       %(prog)s [-h] [--host NAME] --run FOLDER -- CMD ...",
        description=__doc__.split("\n\n", 1)[0], epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("folder", nargs="?", default=None, metavar="FOLDER",
                   help="the workflow's folder whose stale lock to remove (default: .)")
    p.add_argument("--run", metavar="FOLDER", help="run CMD (after --) as the owner of FOLDER")
    p.add_argument("--host", metavar="NAME", help=f"this host's name (default: ${HOST_ENV} or the hostname)")
    return p


def main(argv: list[str]) -> int:
    args = list(argv[1:])
    cmd = None
    if "--" in args:
        cut = args.index("--")
        args, cmd = args[:cut], args[cut + 1:]
    p = parser()
    a = p.parse_args(args)
    if a.run is not None and (not cmd or a.folder is not None):
        p.error("--run FOLDER needs a command after -- and no other FOLDER")
    if a.run is None and cmd is not None:
        p.error("a command after -- needs --run FOLDER")
    try:
        if a.run is not None:
            return run(Path(a.run), cmd, a.host)
        folder = Path(a.folder or ".")
        if not folder.is_dir():
            p.error(f"{folder} is not a folder")
        done = clear(folder, a.host)
    except Refused as e:
        print(f"unlock_stale: {e}", file=sys.stderr)
        return 1
    if done:
        print(f"unlock_stale: {done}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
