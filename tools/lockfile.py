#!/usr/bin/env python3
"""The lock files (requirements/{cpu,cuda12,cuda13}.lock) against pyproject.toml, and the build switch.

    python tools/lockfile.py check                     # every lock agrees with pyproject.toml (exit 1: it does not)
    python tools/lockfile.py remove-others LOCK OTHER...  # uninstall what only the OTHER locks pin (the venv's python)

A lock is uv's universal requirements file with hashes (``make lock``): one line ``name==version [; marker]`` per
pinned distribution, markers choosing the lines of a platform and Python version. It *agrees* with pyproject.toml
when, on every target (:data:`TARGETS`: CPython 3.11 and 3.12 on Linux x86_64 and aarch64),

- each requirement of the dependencies and of the lock's extras (``bmrsparse[workflow]`` inside an extra is
  followed) is satisfied by exactly one pinned line, and
- no line that uv marked as wanted by pyproject.toml (``# via bmrsparse (pyproject.toml)``) names a package that
  pyproject.toml no longer asks for.

``make`` installs a lock with ``pip install --require-hashes``; when the build changes (a GPU appeared or went), the
packages that only the other build's lock pins (JAX's CUDA plugin and NVIDIA's libraries) are removed, so JAX does
not find a CUDA plugin the CPU build did not ask for.
"""

from __future__ import annotations

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


def check(pyproject: dict, lock_path, extras) -> list[str]:
    """Where the lock and pyproject.toml disagree (an empty list: they agree on every target)."""
    problems = []
    pins = parse_lock(lock_path)
    name = Path(lock_path).name
    reqs = requirements(pyproject, extras)
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


def main(argv: list[str]) -> int:
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
