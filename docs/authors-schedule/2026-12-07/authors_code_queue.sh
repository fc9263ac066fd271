#!/usr/bin/env bash
# the authors' code (bmr4pml) on the quick schedule (scale 1.0 = 1e4 warm-up + 5 x 2e3), one core, one XLA thread
set -u
cd /work/main
export BMR4PML_DIR=/work/scratch/bmr4pml PYTHONPATH=/work/scratch/eqx
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
out=/work/scratch/authors
run() { # arch seed methods
  local arch=$1 seed=$2 methods=$3 tag
  for m in ${methods//,/ }; do
    tag=$(echo "$m" | tr -d '&-' | tr 'A-Z' 'a-z')
    f=$out/${arch}_seed${seed}_${tag}.jsonl
    [ -s "$f" ] && grep -q '"acc"' "$f" && continue
    echo "$(date -u +%FT%TZ) start $arch seed $seed $m" >> $out/queue.log
    SEED=$seed METHODS="$m" taskset -c 1 .venv/bin/python /work/shared/tools/ref_bench.py fmnist 1.0 /usr/share/datasets/fashion-mnist $arch > $f.tmp 2> $out/${arch}_seed${seed}_${tag}.err && mv $f.tmp $f
    echo "$(date -u +%FT%TZ) end $arch seed $seed $m rc=$?" >> $out/queue.log
  done
}
for s in 0 1 2; do run mlp $s "BMR-S&S,Tiered-FF,Flat-FF,Flat-MAP"; done
run mlp 5 "BMR-S&S"
# run lenet 0 "BMR-S&S,Tiered-FF,Flat-FF,Flat-MAP"
echo "$(date -u +%FT%TZ) queue done" >> $out/queue.log
