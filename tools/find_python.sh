#!/bin/sh
# Prints the path of a CPython >= VERSION (default 3.12, the oldest the newest JAX supports) that is not a
# free-threaded build: python3, python3.12 ... python3.14 on PATH (pyenv's shims that have no such version selected
# fail and are skipped), then pyenv's installed versions ($PYENV_ROOT, default ~/.pyenv). Exit 1 when none is found.
#   tools/find_python.sh [VERSION]
set -u
case ${1:-} in
    -h | --help)
        echo "usage: tools/find_python.sh [VERSION]"
        sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
esac
want=${1:-3.12}

fits() {
    "$1" -c "import sys, sysconfig
want = tuple(int(p) for p in '$want'.split('.'))
sys.exit(0 if sys.version_info[:2] >= want and not sysconfig.get_config_var('Py_GIL_DISABLED') else 1)" \
        >/dev/null 2>&1
}

for name in python3 python3.12 python3.13 python3.14; do
    found=$(command -v "$name" 2>/dev/null) && fits "$found" && echo "$found" && exit 0
done
for found in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.*/bin/python3; do
    [ -x "$found" ] && fits "$found" && echo "$found" && exit 0
done
echo "tools/find_python.sh: no CPython >= $want found on PATH or in pyenv's versions; install one (e.g. Debian's" \
    "python3.12 or newer, or pyenv install 3.12) or name it: make test-newest PYTHON_NEWEST=/path/to/python3.12" >&2
exit 1
