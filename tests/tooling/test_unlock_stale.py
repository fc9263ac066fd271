"""tools/unlock_stale.py removes a Snakemake lock only when the run that holds it is provably gone (issue 20.5).

The run's owner record (.snakemake/bmrsparse-owner.json: host, pid and start time) decides: another host refuses,
naming the host and pid; this host removes the lock once that process is dead (a reused pid with another start time
counts as dead). Hosts are faked with ``--host`` / ``$BMRSPARSE_HOSTNAME``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    path = folder / unlock_stale.OWNER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"started": "2026-12-02 00:00:00 UTC", **record}))
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
