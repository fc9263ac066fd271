"""A run says what it will cost before it starts (issue 31.3): `make reproduce` runs the plan through
tools/confirm_cost.py, which, on a terminal, shows an estimate of more than an hour and asks whether to go on;
YES=1 or a non-terminal goes on without asking.

The estimate is read from the plan's own output (bmrsparse.workflow.plan.format_plan), so the parser is checked
against it. `make reproduce` runs for real on a pseudo-terminal in a copy of the Makefile, with a .venv whose python
(for `-m bmrsparse.workflow.plan`, as the Makefile calls it) prints a plan of 12 h 30 min and whose Snakemake only
says that it ran.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import confirm_cost  # noqa: E402

QUESTION = "Go on? [y/N]"


# --------------------------------------------------------------------------------------- the plan's estimate
@pytest.mark.parametrize("seconds", [0, 7, 59, 60, 61, 599, 3599, 3600, 3661, 12 * 3600 + 30 * 60 + 29, 40 * 3600])
def test_the_estimate_is_read_from_the_plans_duration(seconds):
    from bmrsparse.workflow.plan import duration

    text = f"  estimated wall time: {duration(seconds)} (1 h of work in all; 5 SVI steps)"
    got, shown = confirm_cost.estimate_seconds(text)
    assert shown == duration(seconds)
    assert seconds - 60 < got <= seconds + 30  # "H h MM min" drops the seconds


def test_the_estimate_is_read_from_a_whole_plan():
    from bmrsparse.workflow import plan

    job = plan.Job(jobid=1, rule="train_warmup", wildcards={"dataset": "fashion_mnist", "arch": "mlp", "seed": "0"},
                   threads=2, gpu=0)
    est = plan.Estimate(wall_s=5 * 3600 + 7 * 60, work_s=9000.0, per_rule={"train_warmup": 9000.0},
                        seconds={1: 9000.0})
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())  # the quick profile's schedule
    text = plan.format_plan([job], est, cfg, {}, device="cpu", cores=2, gpu_limit=None, startup_s=3.0, cached=True,
                            configfiles=["config/config.yaml"])
    assert confirm_cost.estimate_seconds(text) == (5 * 3600 + 7 * 60, "5 h 07 min")
    assert confirm_cost.estimate_seconds("bmrsparse plan: 3 jobs: train_warmup 3") is None  # --no-timing


# ------------------------------------------------------------------------------------------------ the decision
def _asked(answer):
    asked = []

    def ask(prompt):
        asked.append(prompt)
        if answer is EOFError:
            raise EOFError
        return answer
    return asked, ask


@pytest.mark.parametrize("answer, status", [("y", 0), ("YES\n", 0), ("n", 1), ("", 1), ("maybe", 1), (EOFError, 1)])
def test_on_a_terminal_a_long_run_asks(answer, status, capsys):
    asked, ask = _asked(answer)
    assert confirm_cost.decide(3 * 3600.0, "3 h 00 min", above=3600, yes=False, terminal=True, ask=ask) == status
    assert len(asked) == 1 and "3 h 00 min" in asked[0] and QUESTION in asked[0]
    if status:
        assert "YES=1" in capsys.readouterr().out


def test_yes_a_pipe_a_short_run_or_no_estimate_go_on_without_asking(capsys):
    asked, ask = _asked("n")
    assert confirm_cost.decide(3 * 3600.0, "3 h 00 min", above=3600, yes=True, terminal=True, ask=ask) == 0
    assert "YES=1: going on" in capsys.readouterr().out
    assert confirm_cost.decide(3 * 3600.0, "3 h 00 min", above=3600, yes=False, terminal=False, ask=ask) == 0
    assert "not a terminal" in capsys.readouterr().out
    assert confirm_cost.decide(3600.0, "1 h 00 min", above=3600, yes=False, terminal=True, ask=ask) == 0
    assert confirm_cost.decide(None, "", above=3600, yes=False, terminal=True, ask=ask) == 0
    assert asked == []


def test_a_failed_plan_passes_its_status_and_asks_nothing(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "confirm_cost.py"), "--", sys.executable, "-c",
                          "print('estimated wall time: 9 h 00 min'); raise SystemExit(3)"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 3 and "estimated wall time: 9 h 00 min" in run.stdout and QUESTION not in run.stdout


# ------------------------------------------------------------------------- make reproduce on a (pseudo-)terminal
PLAN_OUTPUT = ("bmrsparse plan: 323 jobs for config/paper.yaml\n"
               "  estimated wall time: 12 h 30 min (40 h 00 min of work in all; 12,000,000 SVI steps; 16 cores)\n")


@pytest.fixture
def project(tmp_path):
    """A copy of the Makefile and its tools; a current CPU install whose python prints a 12.5-hour plan and runs
    tools/confirm_cost.py for real, and whose snakemake only says that it ran."""
    if shutil.which("make") is None:
        pytest.skip("needs make")
    proj = tmp_path / "proj"
    (proj / "tools").mkdir(parents=True)
    (proj / "requirements").mkdir()
    for part in ("Makefile", "pyproject.toml", "tools/choose_device.sh", "tools/confirm_cost.py",
                 "requirements/cpu.lock", "requirements/cuda12.lock", "requirements/cuda13.lock"):
        shutil.copy2(ROOT / part, proj / part)
    bindir = proj / ".venv" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "python").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = tools/confirm_cost.py ]; then exec "{sys.executable}" "$@"; fi\n'
        f'if [ "$1 $2" = "-m bmrsparse.workflow.plan" ]; then printf \'%s\' "{PLAN_OUTPUT}"; exit 0; fi\n'
        'echo "python $*"\n')
    (bindir / "snakemake").write_text('#!/bin/sh\necho "snakemake $*"\n')
    for script in bindir.iterdir():
        script.chmod(0o755)
    stamp = proj / ".venv" / ".installed-cpu"
    stamp.touch()
    later = time.time() + 60
    os.utime(stamp, (later, later))
    return proj


def _env(proj):
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not shutil.which("nvidia-smi", path=p))
    return {"PATH": path, "HOME": str(proj.parent), "TERM": "dumb"}


def _on_terminal(proj, *args, answer=None, timeout=120) -> tuple[int, str]:
    """make reproduce with a pseudo-terminal as stdin, stdout and stderr; ``answer`` typed at the question."""
    master, slave = os.openpty()
    proc = subprocess.Popen([shutil.which("make"), "--no-print-directory", "reproduce", "DEVICE=cpu", *args],
                            cwd=proj, env=_env(proj), stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out, answered, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the terminal's other end closed: make ended
                    break
                if not chunk:
                    break
                out += chunk
                if answer is not None and not answered and QUESTION.encode() in out:
                    os.write(master, answer.encode() + b"\n")
                    answered = True
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            pytest.fail(f"make did not end: {out.decode(errors='replace')[-2000:]}")
        return proc.wait(timeout=30), out.decode(errors="replace").replace("\r\n", "\n")
    finally:
        os.close(master)


def test_a_long_plan_on_a_terminal_asks_and_no_stops_before_training(project):
    status, out = _on_terminal(project, answer="n")
    assert f"bmrsparse: the plan estimates 12 h 30 min on this machine (more than 1 h). {QUESTION}" in out, out
    assert status != 0 and "stopped before training" in out
    assert "snakemake --profile" not in out  # nothing trained


def test_yes_at_the_question_trains(project):
    status, out = _on_terminal(project, answer="y")
    assert QUESTION in out and status == 0, out
    assert "python tools/unlock_stale.py --run . -- .venv/bin/snakemake --profile profiles/local" in out


def test_yes_1_or_no_terminal_trains_without_the_question(project):
    status, out = _on_terminal(project, "YES=1")
    assert status == 0 and QUESTION not in out and "YES=1: going on without asking" in out, out
    done = subprocess.run([shutil.which("make"), "--no-print-directory", "reproduce", "DEVICE=cpu"], cwd=project,
                          env=_env(project), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and QUESTION not in done.stdout, done.stdout + done.stderr
    assert "not a terminal, so going on without asking" in done.stdout
    assert "python tools/unlock_stale.py --run . -- .venv/bin/snakemake" in done.stdout
