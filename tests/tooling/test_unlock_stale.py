"""tools/unlock_stale.py removes a Snakemake lock only when the run that holds it is provably gone (issue 20.5).

The run's owner record (.snakemake/bmrsparse-owner.json: host, pid and start time) decides: another host refuses,
naming the host and pid; this host removes the lock once that process is dead (a reused pid with another start time
counts as dead); a record under this host's name from another machine (machine id, else boot time) is refused too.
Hosts are faked with ``--host`` / ``$BMRSPARSE_HOSTNAME``. Processes are seen through psutil: on a platform without
``/proc`` (macOS; faked here by hiding ``/proc`` from everything but psutil) the tool works the same (issue 31.2).
"""

from __future__ import annotations

import builtins
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "unlock_stale.py"
sys.path.insert(0, str(ROOT / "tools"))
import unlock_stale  # noqa: E402


def _locked(folder: Path) -> Path:
    locks = folder / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("results/x\n")
    (locks / "0.output.lock").write_text("results/y\n")
    return locks


def _owner(folder: Path, **record) -> Path:
    """An owner record written on this machine (its machine id and boot time), unless ``record`` says otherwise."""
    path = folder / unlock_stale.OWNER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"started": "2026-12-02 00:00:00 UTC", **unlock_stale.this_machine(), **record}))
    return path


def _dead_pid() -> tuple[int, str]:
    """The pid and start identity of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    start = unlock_stale.process_start(proc.pid)
    proc.wait()
    assert start is not None and unlock_stale.process_start(proc.pid) is None
    return proc.pid, start


def _unlock(folder: Path, *args: str, host: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop(unlock_stale.HOST_ENV, None)
    if host:
        env[unlock_stale.HOST_ENV] = host
    return subprocess.run([sys.executable, str(SCRIPT), *args, str(folder)], capture_output=True, text=True,
                          env=env, timeout=60)


def test_a_lock_owned_by_another_host_is_kept_and_the_host_named(tmp_path):
    locks = _locked(tmp_path)
    pid, start = _dead_pid()  # dead here; but on login2 nobody here can tell
    owner = _owner(tmp_path, host="login2", pid=pid, start=start)
    run = _unlock(tmp_path, host="login1")
    assert run.returncode == 1
    assert "login2" in run.stderr and str(pid) in run.stderr and "make unlock" in run.stderr
    assert len(list(locks.glob("*.lock"))) == 2 and owner.exists()
    # the same with --host instead of the environment variable
    run = subprocess.run([sys.executable, str(SCRIPT), "--host", "login1", str(tmp_path)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 1 and "host login2" in run.stderr


def test_a_lock_whose_owner_on_this_host_is_dead_is_removed(tmp_path):
    locks = _locked(tmp_path)
    pid, start = _dead_pid()
    owner = _owner(tmp_path, host="login1", pid=pid, start=start)
    run = _unlock(tmp_path, host="login1")
    assert run.returncode == 0, run.stderr
    assert "removed the lock a killed Snakemake left" in run.stderr and str(pid) in run.stderr
    assert not list(locks.glob("*.lock")) and not owner.exists()


def test_a_live_owner_on_this_host_keeps_its_lock_and_a_reused_pid_does_not(tmp_path):
    locks = _locked(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = unlock_stale.process_start(sleeper.pid)
        _owner(tmp_path, host="login1", pid=12345678, start="gone", child_pid=sleeper.pid, child_start=start)
        run = _unlock(tmp_path, host="login1")
        assert run.returncode == 1 and str(sleeper.pid) in run.stderr and "this host" in run.stderr
        assert len(list(locks.glob("*.lock"))) == 2
        # the same pid with another start time is another process: the owner is gone
        _owner(tmp_path, host="login1", pid=sleeper.pid, start=start + "0")
        run = _unlock(tmp_path, host="login1")
        assert run.returncode == 0 and not list(locks.glob("*.lock")), run.stderr
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_lock_without_owner_record_is_removed_only_when_nothing_runs_here_and_says_so(tmp_path):
    locks = _locked(tmp_path)
    fake = tmp_path / "bin" / "snakemake"  # a stand-in Snakemake working in the folder
    fake.parent.mkdir()
    fake.write_text("import time\ntime.sleep(60)\n")
    head = subprocess.Popen([sys.executable, str(fake), "--cores", "1"], cwd=tmp_path)
    try:
        time.sleep(0.3)
        run = _unlock(tmp_path, host="login1")
        assert run.returncode == 1 and str(head.pid) in run.stderr
        assert len(list(locks.glob("*.lock"))) == 2
    finally:
        head.kill()
        head.wait()
    run = _unlock(tmp_path, host="login1")
    assert run.returncode == 0 and not list(locks.glob("*.lock"))
    assert "no owner record" in run.stderr and "another host" in run.stderr


def test_nothing_to_do_without_lock_or_record(tmp_path):
    run = _unlock(tmp_path)
    assert run.returncode == 0 and run.stderr == ""


def test_an_unreadable_owner_record_is_refused(tmp_path):
    _locked(tmp_path)
    (tmp_path / unlock_stale.OWNER).write_text('{"host": "log')
    run = _unlock(tmp_path, host="login1")
    assert run.returncode == 1 and "cannot be read" in run.stderr


def test_run_records_the_owner_while_the_command_runs_and_removes_it_after(tmp_path):
    seen = tmp_path / "seen.json"
    cmd = [sys.executable, "-c", f"import shutil; shutil.copy('{unlock_stale.OWNER}', '{seen}'); raise SystemExit(3)"]
    run = subprocess.run([sys.executable, str(SCRIPT), "--host", "login1", "--run", str(tmp_path), "--", *cmd],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 3, run.stderr  # the command's exit status
    record = json.loads(seen.read_text())
    assert record["host"] == "login1" and record["command"] == cmd
    assert record["child_start"] and record["start"]
    assert not (tmp_path / unlock_stale.OWNER).exists()
    # while another host owns the folder, --run refuses and does not start the command
    pid, start = _dead_pid()
    _owner(tmp_path, host="login2", pid=pid, start=start)
    seen.unlink()
    run = subprocess.run([sys.executable, str(SCRIPT), "--host", "login1", "--run", str(tmp_path), "--", *cmd],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "login2" in run.stderr and not seen.exists()


def test_a_killed_run_leaves_a_record_that_this_host_then_clears(tmp_path):
    cmd = [sys.executable, "-c", "import time; time.sleep(60)"]
    wrapper = subprocess.Popen([sys.executable, str(SCRIPT), "--host", "login1", "--run", str(tmp_path), "--", *cmd],
                               start_new_session=True)
    path = tmp_path / unlock_stale.OWNER
    deadline = time.monotonic() + 30
    while not (path.exists() and "child_pid" in path.read_text()):
        assert time.monotonic() < deadline, "no owner record"
        time.sleep(0.05)
    _locked(tmp_path)
    run = _unlock(tmp_path, host="login1")
    assert run.returncode == 1 and str(wrapper.pid) in run.stderr  # alive: refused
    os.killpg(wrapper.pid, signal.SIGKILL)  # the wrapper and its command, as a power loss would
    wrapper.wait()
    time.sleep(0.2)
    run = _unlock(tmp_path, host="login1")
    assert run.returncode == 0 and "removed the lock a killed Snakemake left" in run.stderr, run.stderr
    assert not path.exists()


def test_help_prints_the_usage_and_a_missing_folder_is_an_error(tmp_path):
    run = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.startswith("usage: unlock_stale.py") and "--run FOLDER" in run.stdout
    assert not (tmp_path / "--help").exists()
    run = _unlock(tmp_path / "nowhere")
    assert run.returncode == 2 and "is not a folder" in run.stderr
    run = subprocess.run([sys.executable, str(SCRIPT), "--run", str(tmp_path)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "needs a command after --" in run.stderr


def test_a_record_under_this_hosts_name_from_another_machine_is_kept(tmp_path):
    locks = _locked(tmp_path)
    pid, start = _dead_pid()
    me = unlock_stale.this_machine()
    # the same name, another machine id: e.g. two nodes both called "localhost"
    owner = _owner(tmp_path, host="login1", pid=pid, start=start, machine="0" * 32)
    run = _unlock(tmp_path, host="login1")
    assert run.returncode == 1 and "cannot be proven to be this machine" in run.stderr and "0" * 32 in run.stderr
    assert len(list(locks.glob("*.lock"))) == 2 and owner.exists()
    # no machine id to compare (macOS): the boot time decides; another one cannot be told from another machine
    _owner(tmp_path, host="login1", pid=pid, start=start, machine=None, boot=me["boot"] - 3600)
    run = _unlock(tmp_path, host="login1")
    assert run.returncode == 1 and "no machine id to compare and another boot time" in run.stderr
    _owner(tmp_path, host="login1", pid=pid, start=start, machine=None, boot=None)
    assert _unlock(tmp_path, host="login1").returncode == 1
    # the same boot: this machine
    _owner(tmp_path, host="login1", pid=pid, start=start, machine=None, boot=me["boot"])
    run = _unlock(tmp_path, host="login1")
    assert run.returncode == 0 and not list(locks.glob("*.lock")), run.stderr


def test_a_live_pid_in_a_record_of_another_format_counts_as_alive(tmp_path):
    """A record written by an older version (start time as /proc's boot id and clock ticks) cannot prove that a live
    process with its pid is another one: the lock stays."""
    locks = _locked(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _owner(tmp_path, host="login1", pid=sleeper.pid, start="6a1f0c52-5d7e-4e0b-a3b5-b0c4f0a3c1d2:123456")
        run = _unlock(tmp_path, host="login1")
        assert run.returncode == 1 and str(sleeper.pid) in run.stderr
        assert len(list(locks.glob("*.lock"))) == 2
    finally:
        sleeper.kill()
        sleeper.wait()
    run = _unlock(tmp_path, host="login1")  # gone: no process has the pid any more
    assert run.returncode == 0 and not list(locks.glob("*.lock")), run.stderr


# ---- a platform without /proc (macOS): only psutil sees processes, through its own platform code -----------------
def _from_psutil() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith("psutil"):
            return True
        frame = frame.f_back
    return False


@pytest.fixture
def no_proc(monkeypatch):
    """``/proc`` does not exist for any code but psutil's (psutil stands for the platform's process API, as sysctl
    on macOS): opening, listing, statting or reading a link under it raises FileNotFoundError."""

    def guard(fn):
        def wrapped(path, *args, **kwargs):
            name = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else ""
            if (name == "/proc" or name.startswith("/proc/")) and not _from_psutil():
                raise FileNotFoundError(2, "No such file or directory (this platform has no /proc)", name)
            return fn(path, *args, **kwargs)
        return wrapped

    for module, name in ((builtins, "open"), (io, "open"), (os, "open"), (os, "listdir"), (os, "scandir"),
                         (os, "readlink"), (os, "stat"), (os, "lstat")):
        monkeypatch.setattr(module, name, guard(getattr(module, name)))
    assert not Path("/proc").exists() and not os.path.isdir("/proc/self")
    monkeypatch.delenv(unlock_stale.HOST_ENV, raising=False)


def test_without_proc_a_fresh_folder_and_a_dead_owners_lock(no_proc, tmp_path):
    assert unlock_stale.clear(tmp_path, "login1") is None  # a fresh clone: nothing to do, no error
    locks = _locked(tmp_path)
    pid, start = _dead_pid()
    _owner(tmp_path, host="login1", pid=pid, start=start)
    done = unlock_stale.clear(tmp_path, "login1")
    assert "removed the lock a killed Snakemake left" in done and not list(locks.glob("*.lock"))


def test_without_proc_a_live_owner_and_a_live_snakemake_keep_the_lock(no_proc, tmp_path):
    locks = _locked(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    fake = tmp_path / "bin" / "snakemake"
    fake.parent.mkdir()
    fake.write_text("import time\ntime.sleep(60)\n")
    head = subprocess.Popen([sys.executable, str(fake), "--cores", "1"], cwd=tmp_path)
    try:
        _owner(tmp_path, host="login1", pid=sleeper.pid, start=unlock_stale.process_start(sleeper.pid))
        with pytest.raises(unlock_stale.Refused, match=f"pid {sleeper.pid}"):
            unlock_stale.clear(tmp_path, "login1")
        (tmp_path / unlock_stale.OWNER).unlink()
        time.sleep(0.3)
        assert unlock_stale.live_snakemakes(tmp_path) == [head.pid]
        with pytest.raises(unlock_stale.Refused, match=f"pid {head.pid}"):
            unlock_stale.clear(tmp_path, "login1")
        assert len(list(locks.glob("*.lock"))) == 2
    finally:
        for proc in (sleeper, head):
            proc.kill()
            proc.wait()
    assert "no owner record" in unlock_stale.clear(tmp_path, "login1")
    assert not list(locks.glob("*.lock"))


def test_without_proc_run_records_the_owner_and_clears_it(no_proc, tmp_path):
    seen = tmp_path / "seen.json"
    cmd = [sys.executable, "-c", f"import shutil; shutil.copy('{unlock_stale.OWNER}', '{seen}')"]
    assert unlock_stale.main(["unlock_stale.py", "--host", "login1", "--run", str(tmp_path), "--", *cmd]) == 0
    record = json.loads(seen.read_text())
    assert record["start"].startswith(unlock_stale.START_FORMAT) and record["child_start"]
    assert record["boot"] == unlock_stale.this_machine()["boot"]
    assert not (tmp_path / unlock_stale.OWNER).exists()
