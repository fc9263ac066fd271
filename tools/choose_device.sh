#!/bin/sh
# Which JAX build and which profile `make reproduce` uses, and why; installs and runs nothing but `nvidia-smi -L` and,
# when that lists a GPU, `nvidia-smi` (its header names the newest CUDA version the driver supports).
#
#   DEVICE=auto|cpu|cuda  (empty = auto: cuda when `nvidia-smi -L`, found on PATH, lists at least one GPU)
#   CUDA=12|13            (empty = auto: JAX's CUDA 13 build when the driver supports CUDA 13 or newer, else the
#                          CUDA 12 build, also when no driver answers, e.g. on a login node without GPUs)
#   CONFIG=path           (empty = config/paper.yaml for cuda, config/config.yaml for cpu; an explicit one wins)
#
# Prints the choice line ("bmrsparse: ..."), then KEY=VALUE lines without spaces in the values:
#   DEVICE=cpu|cuda  BUILD=cpu|cuda12|cuda13 (the lock requirements/<BUILD>.lock)  EXTRAS=test|test,cuda12|test,cuda13
#   CONFIG=...  GPUS=n (GPUs listed; the gpu resource of a cuda run, >= 1)
# With --make the KEY=VALUE lines come first and the choice line last: the Makefile reads that through $(shell ...)
# (newlines become spaces), so `make -n reproduce` runs this script and nothing else.
# Exit status 2 (nothing on stdout) for a DEVICE or CONFIG it cannot use.
set -u

case ${1:-} in
    "" | --make) ;;
    -h | --help)
        echo "usage: tools/choose_device.sh [--make]"
        echo
        sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0"
        exit 0
        ;;
    *)
        echo "usage: tools/choose_device.sh [--make]" >&2
        exit 2
        ;;
esac

device=${DEVICE:-auto}
cuda=${CUDA:-}
config=${CONFIG:-}

case $device in
    auto | cpu | cuda) ;;
    *)
        echo "bmrsparse: DEVICE=$device: use DEVICE=cpu, DEVICE=cuda or leave it unset (auto)" >&2
        exit 2
        ;;
esac
case $cuda in
    "" | 12 | 13) ;;
    *)
        echo "bmrsparse: CUDA=$cuda: use CUDA=12, CUDA=13 or leave it unset (auto: the driver's CUDA version)" >&2
        exit 2
        ;;
esac
case $config in
    *[!A-Za-z0-9._/+-]*)
        echo "bmrsparse: CONFIG=$config: a path of letters, digits and . _ / + - please" >&2
        exit 2
        ;;
esac

# nvidia-smi with its arguments; a hung driver must not hang make: give up after 20 s
smi() {
    if command -v timeout >/dev/null 2>&1; then
        timeout 20 nvidia-smi "$@"
    else
        nvidia-smi "$@"
    fi
}

# The GPUs nvidia-smi lists (lines "GPU 0: NVIDIA H100 80GB HBM3 (UUID: ...)"), and why there are none.
gpus=0
listing=""
driver_cuda=""
if ! command -v nvidia-smi >/dev/null 2>&1; then
    why="nvidia-smi not found"
else
    out=$(smi -L 2>&1)
    status=$?
    gpus=$(printf '%s\n' "$out" | grep -c '^GPU [0-9]')
    if [ "$gpus" -gt 0 ]; then
        # the first GPU (and how many more), without the UUID, on one line
        listing=$(printf '%s\n' "$out" | grep '^GPU [0-9]' | head -n 1 | sed 's/ *(UUID:.*//' | tr -d "'\"\`\\\\\$")
        [ "$gpus" -gt 1 ] && listing="$listing, and $((gpus - 1)) more"
        # "| NVIDIA-SMI 580.159.04   Driver Version: 580.159.04   CUDA Version: 13.0 |"
        driver_cuda=$(smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1)
    elif [ "$status" -ne 0 ]; then
        why="nvidia-smi -L failed (exit $status): $(printf '%s' "$out" | head -n 1 | tr -d "'\"\`\\\\\$")"
    else
        why="nvidia-smi -L lists no GPU"
    fi
fi

if [ "$gpus" -gt 0 ]; then
    found="NVIDIA GPU found (nvidia-smi -L: $listing; driver for CUDA ${driver_cuda:-version not shown})"
else
    found="no NVIDIA GPU ($why)"
fi

case $device in
    auto)
        if [ "$gpus" -gt 0 ]; then device=cuda; else device=cpu; fi
        reason=$found
        ;;
    *) reason="DEVICE=$device given; $found" ;;
esac

if [ "$device" = cuda ]; then
    # JAX's CUDA 13 build needs a driver for CUDA 13; its CUDA 12 build runs on drivers for CUDA 12 and newer
    if [ -n "$cuda" ]; then
        cuda_note=" (CUDA=$cuda given)"
    elif [ "${driver_cuda%%.*}" -ge 13 ] 2>/dev/null; then
        cuda=13 cuda_note=""
    else
        cuda=12 cuda_note=""
        if [ -z "$driver_cuda" ]; then
            cuda_note=" (CUDA=13 for the CUDA 13 build)"
        elif [ "${driver_cuda%%.*}" -lt 12 ] 2>/dev/null; then
            cuda_note=" (needs a driver for CUDA 12 or newer: update the NVIDIA driver)"
        fi
    fi
    extras="test,cuda$cuda"
    build="CUDA $cuda build of JAX$cuda_note"
    lock=cuda$cuda
    default_config=config/paper.yaml
    [ "$gpus" -gt 0 ] || gpus=1 # forced: one GPU JAX finds by itself
else
    extras="test"
    build="CPU build of JAX"
    lock=cpu
    default_config=config/config.yaml
fi
if [ -n "$config" ]; then
    config_note="$config (CONFIG given)"
else
    config=$default_config
    config_note=$config
fi

hint=""
if [ "$device" = cuda ] && [ "${DEVICE:-auto}" = auto ] && [ -z "${CONFIG:-}" ]; then
    hint=" (make reproduce DEVICE=cpu for the quick profile on the CPU)"
fi

line="bmrsparse: $reason: $build, $config_note$hint"
[ "${1:-}" = --make ] || echo "$line"
echo "DEVICE=$device"
echo "BUILD=$lock"
echo "EXTRAS=$extras"
echo "CONFIG=$config"
echo "GPUS=$gpus"
[ "${1:-}" != --make ] || echo "$line"
