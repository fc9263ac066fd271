#!/usr/bin/env bash
# The prepared GPU measurement (issues 13 and 22), as ONE device call (tools/gpu/README.md gives the exact calls).
# Run from the repository root on the device machine, after tools/gpu/fetch-wheels.sh filled tools/gpu/.whl and
# .data here.
#
# Order (each part's results are copied to $OUT as soon as they exist, so a cut run still returns them):
#   1. install the carried wheels into $SITE, print versions, nvidia-smi and jax.devices()      -> env.txt
#   2. python -m bmrsparse.bench, one process per architecture (MLP and LeNet-5 with --seeds 8) -> bench.csv
#   3. an XLA dump of the MLP's Flat-MAP and Flat-FF steps: kernels per step                    -> xla.txt
#   4. the workflow: FashionMNIST x WF_ARCHS x 4 methods with config/paper.yaml; the paper's schedule if the
#      estimate fits the time left, else a scaled schedule (said so everywhere)               -> workflow.tar.gz
#   5. `make reproduce` from a clean clone, installing from the carried wheels only, stopped once the plan line
#      and the first training job's progress lines are out (issue 22)                         -> reproduce.log
#   6. one ViT and one Mixer step, one seed and PROFILE_SEEDS vmapped: ms/step, XLA ops per step, kernels and
#      the largest kernels from a jax.profiler trace (issue 22)                                -> profile.txt/.tar.gz
#   7. a short table, printed last                                                             -> summary.txt
# Full log: measure.log; snakemake's log: workflow.log. $OUT holds at most 8 files (the device returns no more):
# issue 13's call makes 7, issue 22's (PARTS="workflow reproduce profile") 8.
#
# Environment (all optional):
#   OUT=dir            output folder (the device call's $OUT; default tools/gpu/out)
#   MEASURE_MODE=gpu   gpu: the paper sizes | smoke: shrunken networks, a few steps, config/test.yaml (CPU check)
#   BUDGET_S=540       wall seconds for everything; parts are cut (timeout) to end inside it
#   BENCH_BUDGET_S=270 wall seconds for part 2 (all architectures together)
#   PARTS="bench xla workflow"   which of parts 2-6 to run (bench xla workflow reproduce profile)
#   WF_SCHEDULE=auto   auto | paper | a fraction such as 0.25 (of the config's warm-up and epoch steps)
#   WF_BUDGET_S=       at most this many seconds for part 4 (default: what parts 5 and 6 leave)
#   BENCH_PLAN="mlp:2000:8:3 ..."  arch:timed steps:seeds:time weight for part 2 (default below, per mode)
#   BENCH_ARGS=""      more arguments of every bench run in part 2 (e.g. "--batch-size 256")
#   METHODS="flat_map flat_ff tiered_ff bmr_ss"  methods of parts 2 and 4 (the paper's four; the library may
#                      register more, e.g. pruning baselines, which would cost device time)
#   WF_ARCHS="mlp"     architectures of the workflow part (FashionMNIST only)
#   REPRO_BUDGET_S=120 wall seconds for part 5 (all its attempts); REPRO_TARGET=reproduce; REPRO_MAKE_ARGS=""
#   REPRO_MODES="lock image stamp"  part 5's attempts, each only if the one before ended without a plan line:
#                      lock: `make` exactly as a user runs it, pip limited to the carried wheels
#                      (PIP_NO_INDEX=1, PIP_FIND_LINKS); image: the same, in a .venv made beforehand that also
#                      sees the image's packages (its CUDA JAX) and $SITE, so pip installs only what they lack;
#                      stamp: that .venv, the Makefile's install stamp(s) touched, so make skips the install
#   REPRO_PLAN_RE='ETA|[Ee]stimat'   a line of the plan (printed before training)
#   REPRO_PROGRESS_RE='steps?/s|it/s'  a training job's progress line; REPRO_PROGRESS_N=2 of them end part 5
#   PROFILE_BUDGET_S=75 wall seconds for part 6; PROFILE_ARCHS="vit mixer"; PROFILE_METHOD=flat_ff;
#   PROFILE_SEEDS=8; PROFILE_STEPS=50 (smoke: 2)
#   PY=python3  SITE=/tmp/site  WHEELS=tools/gpu/.whl  DATA_DIR=tools/gpu/.data
set -u -o pipefail
case ${1:-} in  # -h/--help: the usage and the comment block above, nothing run
    -h | --help) echo "usage: [VAR=value ...] tools/gpu/measure.sh   (run on the device machine; the variables are listed below)"; echo; sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"; exit 0 ;;
esac
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
REPRO_BUDGET_S=${REPRO_BUDGET_S:-120}
PROFILE_BUDGET_S=${PROFILE_BUDGET_S:-75}
PY=${PY:-python3}
SITE=${SITE:-/tmp/site}
WHEELS=${WHEELS:-tools/gpu/.whl}
case "$WHEELS" in /*) WHEELS_ABS=$WHEELS ;; *) WHEELS_ABS=$ROOT/$WHEELS ;; esac
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
    echo "day: $(date -u +%F)"
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
print("device_kind:", getattr(jax.devices()[0], "device_kind", ""))
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
    has reproduce && reserve=$((reserve + REPRO_BUDGET_S))
    has profile && reserve=$((reserve + PROFILE_BUDGET_S))
    avail=$(( $(left) - reserve ))
    if [ -n "${WF_BUDGET_S:-}" ] && [ "$WF_BUDGET_S" -lt "$avail" ]; then avail=$WF_BUDGET_S; fi
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

# ---- 5. `make reproduce` from a clean clone (issue 22) -------------------------------------------------------
# Makefile variables are read from the clone's Makefile at run time (another change makes `make reproduce` detect
# nvidia-smi and install from requirements/cuda.lock); what this part assumes is in tools/gpu/README.md.
REPRO_TARGET=${REPRO_TARGET:-reproduce}
REPRO_MODES=${REPRO_MODES:-lock image stamp}
REPRO_PLAN_RE=${REPRO_PLAN_RE:-ETA|[Ee]stimat}
REPRO_PROGRESS_RE=${REPRO_PROGRESS_RE:-steps?/s|it/s}
REPRO_PROGRESS_N=${REPRO_PROGRESS_N:-2}
mkvar() {  # mkvar DIR NAME: a Makefile variable's value as make expands it in DIR ('' if unset)
    make -s --no-print-directory -C "$1" --eval '__gpu-print-%: ; @echo $($*)' "__gpu-print-$2" 2>/dev/null; }
stamp_vars() {  # names of the Makefile's variables whose name holds STAMP (the install stamps)
    make -pnq -C "$1" __gpu-no-such-target 2>/dev/null | sed -n 's/^\([A-Za-z0-9_]*STAMP[A-Za-z0-9_]*\) [:?]*= .*/\1/p' | sort -u; }
progress_log() {  # the job log under DIR/logs with the most progress lines: "COUNT PATH" ("0 -" if none)
    local best="0 -" f n
    while IFS= read -r f; do
        n=$(grep -Ec "$REPRO_PROGRESS_RE" "$f" 2>/dev/null); n=${n:-0}
        [ "$n" -gt "${best%% *}" ] && best="$n $f"
    done < <(find "$1/logs" -type f 2>/dev/null)
    echo "$best"; }
repro_attempt() {  # repro_attempt MODE SECONDS: 0 = plan and progress seen, 1 = plan only, 2 = no plan line
    local mode=$1 s=$2 dir="$TMP/repro-$1" log="$TMP/repro-$1.log" t0=$SECONDS plan_t="" prog_t="" pid rc venv
    rm -rf "$dir"
    if ! git clone -q "$ROOT" "$dir" 2>"$log"; then
        echo "[repro $mode] git clone failed: $(cat "$log")"; return 2; fi
    echo "[repro $mode] clean clone of $(git -C "$dir" log -1 --format='%h %s' | cut -c1-80) in $dir"
    [ -z "$(git -C "$ROOT" status --short --untracked-files=no 2>/dev/null)" ] \
        || echo "[repro $mode] NOTE: the checkout has uncommitted changes to tracked files; the clone has HEAD only"
    venv=$(mkvar "$dir" VENV); venv=${venv:-.venv}
    echo "[repro $mode] Makefile: VENV=$venv PYTHON=$(mkvar "$dir" PYTHON) stamps: $(for v in $(stamp_vars "$dir"); do printf '%s=%s ' "$v" "$(mkvar "$dir" "$v")"; done)"
    if [ "$mode" != lock ]; then  # a .venv that also sees $SITE and the image's packages (its CUDA JAX)
        "$PY" -m venv "$dir/$venv" >>"$log" 2>&1 || { echo "[repro $mode] venv failed"; return 2; }
        local sp
        sp=$("$dir/$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        { echo "$SITE"; [ "$mode" = stamp ] && echo "$dir/src"
          "$PY" -c 'import site; print("\n".join(site.getsitepackages()))'; } > "$sp/_gpu_image.pth"
        echo "[repro $mode] $venv made beforehand; it also sees: $(tr '\n' ' ' < "$sp/_gpu_image.pth")"
    fi
    if [ "$mode" = stamp ]; then
        local v f
        for v in $(stamp_vars "$dir"); do
            f=$(mkvar "$dir" "$v"); [ -n "$f" ] || continue
            mkdir -p "$dir/$(dirname "$f")"; touch "$dir/$f"; echo "[repro $mode] touched $v=$f (make skips the install)"
        done
    fi
    echo "[repro $mode] (cd clone && PIP_NO_INDEX=1 PIP_FIND_LINKS=$WHEELS_ABS BMRSPARSE_DATA_DIR=$DATA_DIR make $REPRO_TARGET ${REPRO_MAKE_ARGS:-}), at most ${s}s"
    ( cd "$dir" && exec setsid env PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELS_ABS" PIP_DISABLE_PIP_VERSION_CHECK=1 \
          BMRSPARSE_DATA_DIR="$DATA_DIR" make $REPRO_TARGET ${REPRO_MAKE_ARGS:-} ) >>"$log" 2>&1 &
    pid=$!
    local best=""
    while kill -0 "$pid" 2>/dev/null; do
        [ -z "$plan_t" ] && grep -Eq "$REPRO_PLAN_RE" "$log" && plan_t=$((SECONDS - t0))
        best=$(progress_log "$dir")
        [ -z "$prog_t" ] && [ "${best%% *}" -ge 1 ] && prog_t=$((SECONDS - t0))
        if [ -n "$plan_t" ] && [ "${best%% *}" -ge "$REPRO_PROGRESS_N" ]; then break; fi
        [ $((SECONDS - t0)) -ge "$s" ] && break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then  # stop make, Snakemake and its jobs (one process group)
        kill -INT -- "-$pid" 2>/dev/null
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -KILL -- "-$pid" 2>/dev/null; rc="stopped"
    else
        wait "$pid"; rc="exit $?"
    fi
    [ -z "$plan_t" ] && grep -Eq "$REPRO_PLAN_RE" "$log" && plan_t=$((SECONDS - t0))
    best=$(progress_log "$dir")
    {
        echo "==== attempt $mode: make $REPRO_TARGET ${REPRO_MAKE_ARGS:-} ($rc after $((SECONDS - t0)) s)"
        cat "$log"
        echo "==== attempt $mode: plan line after ${plan_t:-(none)} s; first progress line after ${prog_t:-(none)} s; ${best%% *} progress lines in ${best#* }"
        if [ "${best#* }" != "-" ]; then
            echo "==== job log ${best#"$dir/"}"
            head -60 "${best#* }"
        fi
    } >> "$OUT/reproduce.log"
    echo "[repro $mode] $rc after $((SECONDS - t0)) s; plan line: ${plan_t:-none}; progress lines: ${best%% *}"
    if [ -n "$plan_t" ] && [ "${best%% *}" -ge 1 ]; then return 0; fi
    [ -n "$plan_t" ] && return 1
    return 2
}
if has reproduce; then
    stamp "reproduce: make $REPRO_TARGET from a clean clone, carried wheels only, at most ${REPRO_BUDGET_S}s"
    : > "$OUT/reproduce.log"
    command -v make >/dev/null || echo "make: not installed" | tee -a "$OUT/reproduce.log"
    repro_end=$((SECONDS + REPRO_BUDGET_S))
    for mode in $REPRO_MODES; do
        s=$((repro_end - SECONDS)); [ "$s" -lt "$(left)" ] || s=$(left)
        [ "$s" -gt 5 ] || { echo "[repro $mode] skipped: no time left" | tee -a "$OUT/reproduce.log"; break; }
        repro_attempt "$mode" "$s"
        [ $? = 2 ] || break  # a plan line came out: this mode got past the install
    done
    stamp "reproduce done"
fi

# ---- 6. profile one ViT and one Mixer step, one seed and PROFILE_SEEDS vmapped (issue 22) --------------------
if has profile; then
    PROFILE_ARCHS=${PROFILE_ARCHS:-vit mixer}
    PROFILE_METHOD=${PROFILE_METHOD:-flat_ff}
    PROFILE_SEEDS=${PROFILE_SEEDS:-8}
    if [ "$MODE" = gpu ]; then PROFILE_STEPS=${PROFILE_STEPS:-50}; ptiny=""; else PROFILE_STEPS=${PROFILE_STEPS:-2}; ptiny="--tiny"; fi
    pdir="$TMP/profile"
    rm -rf "$pdir"; mkdir -p "$pdir"
    prof_end=$((SECONDS + PROFILE_BUDGET_S))
    n=$(echo $PROFILE_ARCHS | wc -w)
    for arch in $PROFILE_ARCHS; do
        s=$(( (prof_end - SECONDS) / n )); n=$((n - 1))
        [ "$s" -lt "$(( $(left) - 15 ))" ] || s=$(( $(left) - 15 ))
        stamp "profile $arch $PROFILE_METHOD, seeds 1 and $PROFILE_SEEDS, $PROFILE_STEPS steps, at most ${s}s"
        XLA_FLAGS="--xla_dump_to=$pdir/xla --xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*chunk.*" \
            run_cut "$s" "$PY" "$ROOT/tools/gpu/profile_step.py" --arch "$arch" --method "$PROFILE_METHOD" \
            --seeds 1 "$PROFILE_SEEDS" --steps "$PROFILE_STEPS" $ptiny --out "$pdir" \
            || echo "profile $arch: exit $? (cut or failed)"
    done
    "$PY" "$ROOT/tools/gpu/summary.py" profile "$pdir" > "$OUT/profile.txt" 2>&1
    cat "$OUT/profile.txt"
    # the runs, traces and optimized chunk programs (not XLA's other dump files)
    ( cd "$pdir" && find . \( -name run.json -o -name '*.trace.json.gz' -o -name '*chunk*after_optimizations.txt' \) \
          -type f | tar -czf "$OUT/profile.tar.gz.part" -T - ) && mv "$OUT/profile.tar.gz.part" "$OUT/profile.tar.gz"
    if [ "$(stat -c %s "$OUT/profile.tar.gz" 2>/dev/null || echo 0)" -gt $((15 * 1024 * 1024)) ]; then
        echo "profile.tar.gz over 15 MiB: kept without the traces"
        ( cd "$pdir" && find . \( -name run.json -o -name '*chunk*after_optimizations.txt' \) -type f \
              | tar -czf "$OUT/profile.tar.gz" -T - )
    fi
    stamp "profile done"
fi

# ---- 7. summary ----------------------------------------------------------------------------------------------
"$PY" "$ROOT/tools/gpu/summary.py" summary "$OUT" "$TMP/plan.txt" > "$OUT/summary.txt" 2>&1
stamp "end"
cat "$OUT/summary.txt"
rm -rf "$TMP"
