#!/usr/bin/env bash
# Run HERE (a machine with pip and network) before the device call: fills the two ignored folders that the call
# carries to the GPU machine, which reaches no network.
#   tools/gpu/.whl/   wheels for Python 3.12 manylinux x86_64 of the packages the device image lacks (wheels.txt)
#   tools/gpu/.data/  FashionMNIST's four *-ubyte.gz files (about 30 MB)
# and prints what the call will carry (working tree + both folders; the limit is 64 MiB).
#
#   tools/gpu/fetch-wheels.sh            # both
#   SKIP_DATA=1 tools/gpu/fetch-wheels.sh
# FashionMNIST is taken from $BMRSPARSE_DATA_DIR, else Debian's /usr/share/datasets/fashion-mnist
# (apt-get install dataset-fashion-mnist), else the library's download cache (~/.cache/bmrsparse/fashion_mnist).
set -euo pipefail
case ${1:-} in  # -h/--help: the usage and the comment block above, nothing run
    -h | --help) echo "usage: [SKIP_DATA=1] [PYTHON=python3] tools/gpu/fetch-wheels.sh"; echo; sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; exit 0 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
PY=${PYTHON:-python3}
whl=tools/gpu/.whl
data=tools/gpu/.data/fashion-mnist
limit=$((64 * 1024 * 1024))

# wheels.txt: one pin a line; a line ending in "# sdist" is published without wheels and is built here.
mapfile -t binary < <(grep -v '^\s*#' "$here/wheels.txt" | grep -v '# sdist' | sed 's/#.*//; s/ //g' | grep .)
mapfile -t sdist < <(grep -v '^\s*#' "$here/wheels.txt" | grep '# sdist' | sed 's/#.*//; s/ //g' | grep .)
reqs=("${binary[@]}" "${sdist[@]}")
rm -rf "$whl"
mkdir -p "$whl"
quiet() { grep -v "^WARNING: Location 'file:" || true; }
echo "== downloading ${#binary[@]} wheels (Python 3.12, manylinux x86_64) into $whl"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64 \
    -d "$whl" "${binary[@]}" 2> >(quiet >&2)
for r in "${sdist[@]}"; do
    echo "== building $r (source only) as a wheel; it must be pure Python to run on 3.12"
    "$PY" -m pip wheel -q --no-deps --no-binary :all: -w "$whl" "$r" 2> >(quiet >&2)
done
if ls "$whl" | grep -v -e '-py3-none-any\.whl$' -e '-py2\.py3-none-any\.whl$' -e '-cp312-cp312-manylinux' | grep .; then
    echo "the wheels above do not run on CPython 3.12 manylinux x86_64" >&2
    exit 1
fi

# Exactly one wheel per requirement (two versions of one package stop the whole install there).
"$PY" - "$whl" "${reqs[@]}" <<'EOF'
import pathlib, re, sys
whl = pathlib.Path(sys.argv[1])
norm = lambda s: re.sub(r"[-_.]+", "-", s).lower()
names = {}
for f in sorted(whl.glob("*.whl")):
    names.setdefault(norm(f.name.split("-")[0]), []).append(f.name)
want = {norm(r.split("==")[0]): r.split("==")[1] for r in sys.argv[2:]}
bad = [n for n, fs in names.items() if len(fs) != 1] + sorted(set(want) - set(names)) + sorted(set(names) - set(want))
for n, v in want.items():
    if n in names and f"-{v}-" not in names[n][0]:
        bad.append(f"{n}: wanted {v}, got {names[n][0]}")
if bad:
    sys.exit(f"wheel set is wrong: {bad}")
for n in sorted(names):
    f = whl / names[n][0]
    print(f"  {f.stat().st_size / 2**20:6.2f} MiB  {f.name}")
EOF

if [ -z "${SKIP_DATA:-}" ]; then
    files="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"
    src=""
    for d in ${BMRSPARSE_DATA_DIR:+"$BMRSPARSE_DATA_DIR/fashion_mnist" "$BMRSPARSE_DATA_DIR/fashion-mnist" "$BMRSPARSE_DATA_DIR"} \
             /usr/share/datasets/fashion-mnist "${XDG_CACHE_HOME:-$HOME/.cache}/bmrsparse/fashion_mnist"; do
        ok=1
        for f in $files; do [ -f "$d/$f" ] || ok=0; done
        if [ $ok = 1 ]; then src=$d; break; fi
    done
    if [ -z "$src" ]; then
        echo "FashionMNIST not found (set BMRSPARSE_DATA_DIR or apt-get install dataset-fashion-mnist)" >&2
        exit 1
    fi
    echo "== copying FashionMNIST from $src into $data"
    mkdir -p "$data"
    for f in $files; do cp -L "$src/$f" "$data/$f"; done
    # The library checks every file's checksum when it reads it; this only catches a truncated copy early.
    for f in $files; do gzip -t "$data/$f"; done
fi

tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
wsize=$(du -sb "$whl" | cut -f1)
dsize=$( [ -d tools/gpu/.data ] && du -sb tools/gpu/.data | cut -f1 || echo 0)
total=$((tree + wsize + dsize))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "== carried by the call: tree $(mib "$tree") + wheels $(mib "$wsize") + data $(mib "$dsize") = $(mib "$total") (limit 64 MiB)"
if [ "$total" -gt "$limit" ]; then
    echo "TOO LARGE for one call" >&2
    exit 1
fi
