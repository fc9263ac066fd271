#!/usr/bin/env python3
"""Check that a Python can build the project's .venv, before make builds it.

    python3 tools/check_python.py [-h|--help]

Exit 0 when this interpreter's version meets pyproject.toml's ``requires-python`` (a ``>=X.Y`` bound) and its
``venv`` module (with ``ensurepip``) is there; else exit 1 with a message that says what is missing and how to name
another interpreter (``make ... PYTHON=python3.12``). The Makefile runs it with ``$(PYTHON)`` before
``$(PYTHON) -m venv .venv``. Written for any Python (no f-strings, no annotations), so that an old interpreter
prints the message instead of a syntax error.
"""

from __future__ import print_function

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def required(pyproject):
    """``(major, minor)`` of pyproject.toml's ``requires-python = ">=X.Y"``."""
    with open(pyproject) as handle:
        text = handle.read()
    match = re.search(r'^requires-python\s*=\s*"\s*>=\s*(\d+)\.(\d+)[^"]*"', text, re.M)
    if not match:
        raise ValueError("%s has no requires-python = \">=X.Y\"" % pyproject)
    return int(match.group(1)), int(match.group(2))


def problem(version, need, has_venv, executable):
    """The message for an interpreter that cannot build the .venv, or None when it can."""
    have = "%d.%d.%d" % tuple(version[:3])
    if tuple(version[:2]) < need:
        return ("bmrsparse needs Python >= %d.%d (pyproject.toml's requires-python), but %s is Python %s.\n"
                "Install Python %d.%d or newer and name it, e.g. `make test PYTHON=python3.12` (or "
                "PYTHON=/path/to/python3); an existing .venv of the old Python is replaced by `rm -rf .venv`."
                % (need[0], need[1], executable, have, need[0], need[1]))
    if not has_venv:
        return ("%s (Python %s) cannot create a virtual environment: its venv/ensurepip modules are missing.\n"
                "On Debian or Ubuntu: apt-get install python3-venv (or python%d.%d-venv); or name another "
                "interpreter with PYTHON=..." % (executable, have, version[0], version[1]))
    return None


def main(argv):
    if any(a in ("-h", "--help") for a in argv[1:]):
        print("usage: check_python.py [-h]\n\n" + __doc__.split("\n\n", 2)[2].strip())
        return 0
    if len(argv) > 1:
        print("usage: check_python.py [-h]", file=sys.stderr)
        return 2
    try:
        import ensurepip  # noqa: F401
        import venv  # noqa: F401
        has_venv = True
    except ImportError:
        has_venv = False
    message = problem(tuple(sys.version_info), required(os.path.join(ROOT, "pyproject.toml")), has_venv,
                      sys.executable)
    if message:
        print("check_python: " + message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
