#!/usr/bin/env bash
# The GPU measurement of issue 13, as ONE device call (tools/gpu/README.md gives the exact call). Run from the
# repository root on the device machine, after tools/gpu/fetch-wheels.sh filled tools/gpu/.whl and .data here.
#
# Order (each part's results are copied to $OUT as soon as they exist, so a cut run still returns them):
#   1. install the carried wheels into $SITE, print versions, nvidia-smi and jax.devices()      -> env.txt
#   2. python -m bmrsparse.bench, one process per architecture (MLP and LeNet-5 with --seeds 8) -> bench.csv
#   3. an XLA dump of the MLP's Flat-MAP and Flat-FF steps: kernels per step                    -> xla.txt
#   4. the workflow: FashionMNIST x MLP x 4 methods with config/paper.yaml; the paper's schedule if the estimate
#      from step 2 fits the time left, else a scaled schedule (said so everywhere)             -> workflow.tar.gz
#   5. a short table, printed last                                                             -> summary.txt
# Full log: measure.log; snakemake's log: workflow.log.
#
# Environment (all optional):
#   OUT=dir            output folder (the device call's $OUT; default tools/gpu/out)
#   MEASURE_MODE=gpu   gpu: the paper sizes | smoke: shrunken networks, a few steps, config/test.yaml (CPU check)
#   BUDGET_S=540       wall seconds for everything; parts are cut (timeout) to end inside it
#   BENCH_BUDGET_S=270 wall seconds for part 2 (all architectures together)
#   PARTS="bench xla workflow"   which of parts 2-4 to run
#   WF_SCHEDULE=auto   auto | paper | a fraction such as 0.25 (of the config's warm-up and epoch steps)
#   BENCH_PLAN="mlp:2000:8:3 ..."  arch:timed steps:seeds:time weight for part 2 (default below, per mode)
#   BENCH_ARGS=""      more arguments of every bench run in part 2 (e.g. "--batch-size 256")
#   METHODS="flat_map flat_ff tiered_ff bmr_ss"  methods of parts 2 and 4 (the paper's four; the library may
#                      register more, e.g. pruning baselines, which would cost device time)
#   WF_ARCHS="mlp"     architectures of the workflow part (FashionMNIST only)
#   PY=python3  SITE=/tmp/site  WHEELS=tools/gpu/.whl  DATA_DIR=tools/gpu/.data
set -u -o pipefail
START=$SECONDS
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
MODE=${MEASURE_MODE:-gpu}
OUT=${OUT:-$ROOT/tools/gpu/out}
BUDGET_S=${BUDGET_S:-540}
BENCH_BUDGET_S=${BENCH_BUDGET_S:-270}
PARTS=${PARTS:-bench xla workflow}
WF_SCHEDULE=${WF_SCHEDULE:-auto}
WF_ARCHS=${WF_ARCHS:-mlp}
METHODS=${METHODS:-flat_map flat_ff tiered_ff bmr_ss}
PY=${PY:-python3}
SITE=${SITE:-/tmp/site}
WHEELS=${WHEELS:-tools/gpu/.whl}
DATA_DIR=$(cd "${DATA_DIR:-tools/gpu/.data}" 2>/dev/null && pwd || echo "${DATA_DIR:-tools/gpu/.data}")
TMP=$(mktemp -d)
mkdir -p "$OUT"
exec > >(tee -a "$OUT/measure.log") 2>&1

left() { echo $((START + BUDGET_S - SECONDS)); }
stamp() { echo "[$(date -u +%H:%M:%S) +$((SECONDS - START))s, $(left)s left] $*"; }
case "$MODE" in
    gpu) ;;
    smoke) ;;
    *) echo "MEASURE_MODE must be gpu or smoke, not '$MODE'" >&2; exit 2 ;;
esac
stamp "measure.sh mode=$MODE budget=${BUDGET_S}s parts='$PARTS' out=$OUT"

# ---- 1. install and environment ------------------------------------------------------------------------------
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "$WHEELS"/*.whl || { echo "wheel install failed" >&2; exit 1; }
    export PYTHONPATH="$SITE:$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
else
    echo "no wheels in $WHEELS (run tools/gpu/fetch-wheels.sh here first); using what $PY has" >&2
    export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
fi
export PATH="$SITE/bin:$PATH"
{
    echo "mode: $MODE"
    date -u
    git log -1 --format='commit %H %s' 2>/dev/null || echo "commit: (no git)"
    git status --short 2>/dev/null | head -40
    nvidia-smi 2>&1 || echo "nvidia-smi: not available"
    "$PY" - <<'EOF'
import sys, platform, importlib.metadata as md
print("python", sys.version.split()[0], sys.executable, platform.machine())
for name in ["jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "numpyro", "flax", "optax", "numpy", "pandas",
             "snakemake", "pydantic", "sqlalchemy", "typing-extensions", "packaging", "jsonschema"]:
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name} (not installed)")
import jax, numpyro, bmrsparse
print("jax.devices():", jax.devices())
print("default backend:", jax.default_backend())
print("numpyro from", numpyro.__file__, "| bmrsparse from", bmrsparse.__file__)
EOF
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
"$PY" -c "import numpyro, sys; v = tuple(map(int, numpyro.__version__.split('.')[:2])); sys.exit(v < (0, 22))" || {
    echo "numpyro < 0.22 is imported: the carried wheels are not first on PYTHONPATH" >&2; exit 1; }
backend=$("$PY" -c 'import jax; print(jax.default_backend())' 2>/dev/null)
if [ "$MODE" = gpu ] && { [ "$backend" = cpu ] || [ -z "$backend" ]; }; then
    echo "JAX sees no GPU: stopping here (env.txt says why); no CPU numbers are taken in gpu mode" >&2
    exit 1
fi
stamp "environment done"

has() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# run_cut SECONDS CMD...: run CMD, stopped (SIGINT, then SIGKILL 20 s later) when SECONDS run out
run_cut() { local s=$1; shift; [ "$s" -gt 5 ] || { echo "skipped (no time left): $*"; return 124; }
            timeout -s INT -k 20 "$s" "$@"; }

# ---- 2. benchmark --------------------------------------------------------------------------------------------
# arch:timed steps:seeds:weight; an architecture may use its weight's share of the bench time still left (time
# an earlier one leaves unused goes to the later ones), so a slow one cannot starve the rest.
if [ "$MODE" = gpu ]; then
    BENCH_PLAN=${BENCH_PLAN:-"mlp:2000:8:3 lenet:1000:8:3 mixer:200:1:2 vit:200:1:2"}
    TINY=""
else
    BENCH_PLAN=${BENCH_PLAN:-"mlp:5:2:3 lenet:5:2:3 mixer:3:1:2 vit:3:1:2"}
    TINY="--tiny"
fi
merge_bench() {  # every finished architecture's CSV into $OUT/bench.csv (one header)
    "$PY" - "$TMP" "$OUT/bench.csv" <<'EOF'
import glob, sys, pandas as pd
files = sorted(glob.glob(f"{sys.argv[1]}/bench-*.csv"))
if files:
    pd.concat([pd.read_csv(f) for f in files]).to_csv(sys.argv[2], index=False)
EOF
}
if has bench; then
    bench_end=$((SECONDS + BENCH_BUDGET_S))
    weights=0
    for item in $BENCH_PLAN; do IFS=: read -r _ _ _ w <<<"$item"; weights=$((weights + ${w:-1})); done
    for item in $BENCH_PLAN; do
        IFS=: read -r arch steps seeds w <<<"$item"
        w=${w:-1}
        s=$(( (bench_end - SECONDS) * w / weights )); weights=$((weights - w))
        [ "$s" -lt "$(left)" ] || s=$(left)
        stamp "bench $arch: $steps timed steps, seeds 1 and $seeds, at most ${s}s"
        run_cut "$s" "$PY" -m bmrsparse.bench --archs "$arch" --steps "$steps" --seeds "$seeds" --methods $METHODS $TINY \
            ${BENCH_ARGS:-} \
            --out "$TMP/bench-$arch.csv" || echo "bench $arch: exit $? (cut or failed; its printed rows are above)"
        merge_bench
    done
    stamp "bench done"
fi

# ---- 3. XLA dump: kernels per step of the MLP's Flat-MAP and Flat-FF -----------------------------------------
if has xla; then
    s=$(( $(left) < 45 ? $(left) : 45 ))
    stamp "xla dump of the MLP steps, at most ${s}s"
    rm -rf "$TMP/xla"
    XLA_FLAGS="--xla_dump_to=$TMP/xla --xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*chunk.*" \
        run_cut "$s" "$PY" -m bmrsparse.bench --archs mlp --methods flat_map flat_ff --steps 20 $TINY \
        --out "$TMP/xla-bench.csv" >"$TMP/xla-bench.log" 2>&1 || echo "xla bench: exit $?"
    "$PY" "$ROOT/tools/gpu/summary.py" xla "$TMP/xla" > "$OUT/xla.txt" 2>&1
    cat "$OUT/xla.txt"
    stamp "xla done"
fi

# ---- 4. workflow: FashionMNIST, paper config ------------------------------------------------------------------
pack() {  # results worth bringing back (no posteriors, checkpoints or compile cache) -> $OUT/workflow.tar.gz
    local list="$TMP/pack.list"
    { find results logs benchmarks -type f \( -name '*.csv' -o -name '*.md' -o -name '*.tsv' -o -name '*.log' \
          -o -name '*.png' -o -name '*.pdf' -o -name '*.txt' -o -name '*.json' \) -not -path 'results/.jax_cache/*' \
          2>/dev/null
      ls .snakemake/log/*.log 2>/dev/null
      ls "$TMP"/overlay.yaml 2>/dev/null; } > "$list"
    tar -czf "$OUT/workflow.tar.gz.part" --ignore-failed-read -P -T "$list" 2>/dev/null \
        && mv "$OUT/workflow.tar.gz.part" "$OUT/workflow.tar.gz"
}
if has workflow; then
    if [ "$MODE" = gpu ]; then base=config/paper.yaml; configs="config/paper.yaml"
    else base=config/test.yaml; configs="config/paper.yaml config/test.yaml"; fi
    reserve=25  # packing and the summary
    avail=$(( $(left) - reserve ))
    # Estimate from the bench's MLP rows (one seed) and pick the schedule.
    "$PY" "$ROOT/tools/gpu/summary.py" plan "$OUT/bench.csv" "$base" "$WF_SCHEDULE" "$avail" "$WF_ARCHS" \
        "$METHODS" "$TMP/overlay.yaml" > "$TMP/plan.txt" 2>&1
    cat "$TMP/plan.txt"
    if [ -s "$TMP/overlay.yaml" ]; then configs="$configs $TMP/overlay.yaml"; fi
    archs=$(echo "$WF_ARCHS" | sed 's/ /, /g')
    methods=$(echo "$METHODS" | sed 's/ /, /g')
    stamp "workflow: configs $configs, archs [$archs], methods [$methods], at most ${avail}s"
    ( while sleep 45; do pack; done ) & packer=$!
    run_cut "$avail" "$PY" -m snakemake --cores all --configfile $configs \
        --config "datasets=[fashion_mnist]" "archs=[$archs]" "methods=[$methods]" "data_dir=$DATA_DIR" download=false \
        --scheduler greedy --keep-going --rerun-incomplete --show-failed-logs --printshellcmds \
        > "$OUT/workflow.log" 2>&1
    rc=$?
    kill "$packer" 2>/dev/null; wait "$packer" 2>/dev/null
    echo "workflow: exit $rc ($( [ $rc = 0 ] && echo complete || echo 'cut or failed: see workflow.log' ))"
    tail -25 "$OUT/workflow.log"
    pack
    stamp "workflow done"
fi

# ---- 5. summary ----------------------------------------------------------------------------------------------
"$PY" "$ROOT/tools/gpu/summary.py" summary "$OUT" "$TMP/plan.txt" > "$OUT/summary.txt" 2>&1
stamp "end"
cat "$OUT/summary.txt"
rm -rf "$TMP"
