#!/usr/bin/env python3
"""The lock files (requirements/{cpu,cuda12,cuda13}.lock) against pyproject.toml, the build switch, and the conda
environments generated from the locks.

    python tools/lockfile.py check                        # every lock agrees with pyproject.toml (exit 1: it does not)
    python tools/lockfile.py remove-others LOCK OTHER...  # uninstall what only the OTHER locks pin (the venv's python)
    python tools/lockfile.py envs [--check]               # write envs/*.yaml from the locks (--check: exit 1 if stale)

A lock is uv's universal requirements file with hashes (``make lock``): one line ``name==version [; marker]`` per
pinned distribution, markers choosing the lines of a platform and Python version. It *agrees* with pyproject.toml
when, on every target (:data:`TARGETS`: CPython 3.11 and 3.12 on Linux x86_64 and aarch64),

- each requirement of the dependencies and of the lock's extras (``bmrsparse[workflow]`` inside an extra is
  followed) is satisfied by exactly one pinned line, and
- no line that uv marked as wanted by pyproject.toml (``# via bmrsparse (pyproject.toml)``) names a package that
  pyproject.toml no longer asks for;
- the build back-end (pyproject.toml's ``[build-system] requires``, listed again in requirements/build.in, which
  ``make lock`` compiles with it) is pinned too, so ``pip install --no-build-isolation -e .`` needs no index.

The conda environments (``envs/bmrsparse.yaml`` for CPU rules, ``envs/bmrsparse-gpu.yaml`` for GPU rules) are
generated from the locks (:func:`conda_env`): ``python =3.11`` and a pip list that pins, with the lock's versions and
markers, what pyproject.toml's dependencies (and, for the GPU env, the ``cuda12`` extra) need, following uv's
``# via`` annotations, plus the build back-end. ``make lock`` rewrites them; ``envs --check`` (and
tests/tooling/test_envs.py) says when they are stale.

``make`` installs a lock with ``pip install --require-hashes``; when the build changes (a GPU appeared or went), the
packages that only the other build's lock pins (JAX's CUDA plugin and NVIDIA's libraries) are removed, so JAX does
not find a CUDA plugin the CPU build did not ask for.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
#: The extras each lock holds besides the dependencies (the `make lock` commands).
LOCK_EXTRAS = {"cpu": ("test",), "cuda12": ("cuda12", "test"), "cuda13": ("cuda13", "test")}
#: pyproject.toml's [build-system] requires, as `make lock` compiles them into the locks.
BUILD_IN = Path("requirements") / "build.in"
#: The conda environments: file, lock, pyproject.toml extras its rules need, and what it is for.
ENVS = {
    "bmrsparse.yaml": ("cpu", (), "the CPU rules"),
    "bmrsparse-gpu.yaml": ("cuda12", ("cuda12",),
                           "the training rules when the config asks for GPUs (resources.gpu >= 1)"),
}
#: The Python of the conda environments (the locks' lowest target).
ENV_PYTHON = "3.11"
#: Platforms and Pythons the locks must serve: CI and developers (CPython 3.11, x86_64), GPU machines (3.12), ARM.
TARGETS = tuple(
    {"python_version": py, "python_full_version": f"{py}.0", "platform_machine": machine}
    for py in ("3.11", "3.12")
    for machine in ("x86_64", "aarch64")
)
#: uv's annotation of a line that pyproject.toml asks for itself.
FROM_PYPROJECT = "(pyproject.toml)"
#: Never removed on a build switch: the installer and the project.
KEEP = {"pip", "setuptools", "wheel", "bmrsparse"}

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?\s*$")


@dataclass
class Pin:
    """One pinned line of a lock: ``name==version ; marker`` and the packages that want it (uv's ``# via``)."""

    name: str
    version: Version
    marker: Marker | None
    line: int
    via: list[str] = field(default_factory=list)

    def applies(self, env: dict) -> bool:
        return self.marker is None or self.marker.evaluate(env)


def parse_lock(path) -> list[Pin]:
    """The pinned lines of a uv/pip-compile requirements file, with their ``# via`` annotations."""
    pins: list[Pin] = []
    in_via = False
    for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if raw[:1].isalnum():
            match = _PIN.match(raw.strip())
            if not match:
                raise ValueError(f"{path}:{number}: not a pinned requirement (name==version): {raw!r}")
            name, _extras, version, marker = match.groups()
            pins.append(Pin(canonicalize_name(name), Version(version), Marker(marker) if marker else None, number))
            in_via = False
        elif line.startswith("#"):
            text = line[1:].strip()
            if text.startswith("via"):  # "# via a" or "# via" followed by "#   a" lines
                in_via = bool(pins)
                if text[3:].strip() and pins:
                    pins[-1].via.append(text[3:].strip())
            elif in_via and raw.startswith("    #   "):
                pins[-1].via.append(text)
            else:
                in_via = False
        elif line.startswith("--hash="):
            continue
        elif line.startswith("-"):
            continue  # options such as --index-url
        else:
            raise ValueError(f"{path}:{number}: unexpected line {raw!r}")
    return pins


def target_environment(target: dict) -> dict:
    """The marker environment of CPython on Linux for one of :data:`TARGETS`."""
    env = default_environment()
    env.update(sys_platform="linux", platform_system="Linux", os_name="posix", implementation_name="cpython",
               platform_python_implementation="CPython", **target)
    return env


def requirements(pyproject: dict, extras) -> list[Requirement]:
    """The dependencies and the given extras' requirements; an extra naming the project itself is followed."""
    project = pyproject["project"]
    own = canonicalize_name(project["name"])
    optional = project.get("optional-dependencies", {})
    out = [Requirement(r) for r in project.get("dependencies", [])]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        if extra not in optional:
            raise ValueError(f"pyproject.toml has no extra {extra!r}")
        for text in optional[extra]:
            req = Requirement(text)
            if canonicalize_name(req.name) == own:
                todo.extend(req.extras)
            else:
                out.append(req)
    return out


def build_requirements(pyproject: dict) -> list[Requirement]:
    """pyproject.toml's ``[build-system] requires``."""
    return [Requirement(r) for r in pyproject.get("build-system", {}).get("requires", [])]


def read_requirements_in(path) -> list[Requirement]:
    """The requirements of a ``.in`` file (one a line, ``#`` comments)."""
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def check(pyproject: dict, lock_path, extras) -> list[str]:
    """Where the lock and pyproject.toml disagree (an empty list: they agree on every target)."""
    problems = []
    pins = parse_lock(lock_path)
    name = Path(lock_path).name
    reqs = requirements(pyproject, extras) + build_requirements(pyproject)
    named = {canonicalize_name(r.name) for r in reqs}
    for target in TARGETS:
        env = target_environment(target)
        where = f"{name} (Python {target['python_version']}, {target['platform_machine']})"
        active = [p for p in pins if p.applies(env)]
        for req in reqs:
            if req.marker is not None and not req.marker.evaluate(dict(env, extra="")):
                continue
            lines = [p for p in active if p.name == canonicalize_name(req.name)]
            if len(lines) != 1:
                problems.append(f"{where}: {len(lines)} pinned lines for {req} (expected exactly one): "
                                f"{[f'{p.name}=={p.version} (line {p.line})' for p in lines]}")
            elif not req.specifier.contains(lines[0].version, prereleases=True):
                problems.append(f"{where}: line {lines[0].line} pins {lines[0].name}=={lines[0].version}, which "
                                f"pyproject.toml's {req} does not allow")
        for pin in active:
            if any(FROM_PYPROJECT in v for v in pin.via) and pin.name not in named:
                problems.append(f"{where}: line {pin.line} pins {pin.name}=={pin.version} for pyproject.toml, which "
                                f"no longer asks for {pin.name}")
    return list(dict.fromkeys(problems))


def check_all(root=ROOT) -> list[str]:
    pyproject = tomllib.loads((Path(root) / "pyproject.toml").read_text())
    problems = []
    build_in = Path(root) / BUILD_IN
    wanted = sorted(map(str, build_requirements(pyproject)))
    listed = sorted(map(str, read_requirements_in(build_in))) if build_in.is_file() else None
    if listed != wanted:
        problems.append(f"{BUILD_IN} lists {listed}, pyproject.toml's [build-system] requires {wanted}: make them "
                        "equal, then run `make lock`")
    for build, extras in LOCK_EXTRAS.items():
        lock = Path(root) / "requirements" / f"{build}.lock"
        if not lock.is_file():
            problems.append(f"{lock} is missing: run `make lock`")
            continue
        problems += check(pyproject, lock, extras)
    return problems


def names_for_this_python(lock_path) -> set[str]:
    env = default_environment()
    return {p.name for p in parse_lock(lock_path) if p.applies(env)}


def remove_others(lock_path, *other_paths) -> list[str]:
    """Uninstall (with this interpreter's pip) what the ``other_paths`` pin and ``lock_path`` does not; returns them."""
    others = set().union(*(names_for_this_python(p) for p in other_paths if Path(p).is_file()))
    only_other = others - names_for_this_python(lock_path) - KEEP
    installed = {canonicalize_name(d.metadata["Name"]) for d in metadata.distributions() if d.metadata["Name"]}
    gone = sorted(only_other & installed)
    if gone:
        print(f"lockfile: removing what only {' '.join(map(str, other_paths))} install: {' '.join(gone)}",
              file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", *gone], check=True)
    return gone


def _graph(pins: list[Pin]) -> dict[str, set[str]]:
    """``{package: the packages it requires}`` from uv's ``# via`` annotations (``via`` names who wants a pin)."""
    wants: dict[str, set[str]] = {}
    for pin in pins:
        for who in pin.via:
            wants.setdefault(canonicalize_name(who.split(" ", 1)[0]), set()).add(pin.name)
    return wants


def _platform_envs(python: str) -> list[dict]:
    """Marker environments of CPython ``python`` on the platforms a conda environment may be made on."""
    out = []
    for system, platform, machines in (("Linux", "linux", ("x86_64", "aarch64")), ("Darwin", "darwin", ("arm64",
                                                                                                          "x86_64")),
                                       ("Windows", "win32", ("AMD64",))):
        for machine in machines:
            env = default_environment()
            env.update(sys_platform=platform, platform_system=system, platform_machine=machine,
                       os_name="nt" if platform == "win32" else "posix", implementation_name="cpython",
                       platform_python_implementation="CPython", python_version=python,
                       python_full_version=f"{python}.0")
            out.append(env)
    return out


def env_pins(lock_path, roots, python: str = ENV_PYTHON) -> list[Pin]:
    """The lock's lines that ``roots`` (package names) need, following ``# via``, that apply to ``python`` on some
    platform; in the lock's order."""
    pins = parse_lock(lock_path)
    graph = _graph(pins)
    need, todo = set(), [canonicalize_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in need:
            continue
        need.add(name)
        todo.extend(graph.get(name, ()))
    envs = _platform_envs(python)
    return [p for p in pins if p.name in need and any(p.applies(e) for e in envs)]


def _pin_text(lock_path, pin: Pin) -> str:
    """``name==version`` and the lock line's marker, as the lock writes them."""
    raw = Path(lock_path).read_text().splitlines()[pin.line - 1]
    match = _PIN.match(raw.strip())
    text = f"{match.group(1)}{match.group(2) or ''}=={match.group(3)}"
    return f"{text} ; {match.group(4)}" if match.group(4) else text


def conda_env(env_name: str, root=ROOT) -> str:
    """The text of ``envs/<env_name>`` generated from its lock (see the module docstring)."""
    build, extras, purpose = ENVS[env_name]
    root = Path(root)
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    lock = root / "requirements" / f"{build}.lock"
    roots = [r.name for r in requirements(pyproject, extras) + build_requirements(pyproject)]
    lines = [
        f"# Software of {purpose} under `snakemake --sdm conda`. GENERATED from requirements/{build}.lock by",
        "# `make envs` (tools/lockfile.py envs; `make lock` runs it): do not edit. The pip list pins, with the lock's",
        "# versions and markers, what pyproject.toml's dependencies" + (f" and its {', '.join(extras)} extra"
                                                                       if extras else "")
        + " need, and the build back-end;",
        f"# {env_name.replace('.yaml', '.post-deploy.sh')} then installs the project itself from the workflow's folder."
        " tests/tooling/test_envs.py checks",
        "# that this file is what the lock gives. Conda itself has not been tried with it (no conda on the test machine).",
        "channels:",
        "  - conda-forge",
        "  - nodefaults",
        "dependencies:",
        f"  - python ={ENV_PYTHON}",
        "  - pip",
        "  - pip:",
    ]
    for pin in env_pins(lock, roots):
        text = _pin_text(lock, pin)
        lines.append(f"      - {json.dumps(text) if ';' in text else text}")
    return "\n".join(lines) + "\n"


def write_envs(root=ROOT, *, check_only: bool = False) -> list[str]:
    """Write (or, with ``check_only``, compare) every env file; returns the stale ones."""
    stale = []
    for env_name in ENVS:
        path = Path(root) / "envs" / env_name
        text = conda_env(env_name, root)
        if not path.is_file() or path.read_text() != text:
            stale.append(str(path))
            if not check_only:
                path.write_text(text)
    return stale


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[1] in ("-h", "--help"):
        print("usage: lockfile.py {check [ROOT] | remove-others LOCK OTHER... | envs [--check]}\n")
        print(__doc__)
        return 0
    if len(argv) >= 2 and argv[1] == "envs" and argv[2:] in ([], ["--check"]):
        stale = write_envs(check_only=argv[2:] == ["--check"])
        for path in stale:
            print(f"lockfile: {path} {'is not what the lock gives: run `make envs`' if argv[2:] else 'written'}",
                  file=sys.stderr)
        return 1 if stale and argv[2:] else 0
    if len(argv) >= 2 and argv[1] == "check":
        problems = check_all(Path(argv[2]) if len(argv) > 2 else ROOT)
        for p in problems:
            print(f"lockfile: {p}", file=sys.stderr)
        if problems:
            print("lockfile: pyproject.toml and the lock files disagree: run `make lock`", file=sys.stderr)
        return 1 if problems else 0
    if len(argv) >= 4 and argv[1] == "remove-others":
        remove_others(argv[2], *argv[3:])
        return 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
