#!/usr/bin/env bash
# The K=30 benchmark on one GPU machine: every (set, config) is its own `list_core.bench` process, all running
# side by side on the one GPU (MiniLM is small; one process leaves the GPU mostly idle).
#
#   bash benchmarks/gpu_bench.sh OUTDIR SECONDS CONFIGS_FILE
#
# CONFIGS_FILE: one line per config, `name|methods|sets|seeds|ks|--set overrides...` (empty sets, seeds or ks:
# $SETS, $SEEDS, $KS); one process per (config, K, seed, set), started in file order (a config's seeds first, so
# a run cut short still has whole seeds). Environment: BACKBONE (a folder; if it
# holds model16.safetensors, the fp32 weights are restored from it first), DATA (folder of data sets),
# SETS, SEEDS, PARALLEL, EXTRA (more bench arguments for every process, e.g. for a smoke test).
set -u
OUTDIR=${1:?OUTDIR}; LIMIT=${2:-480}; CONFIGS=${3:?CONFIGS_FILE}
BACKBONE=${BACKBONE:-.gpu/minilm}; DATA=${DATA:-.gpu/data}
SETS=${SETS:-"bbc mr rte subj"}; SEEDS=${SEEDS:-"1 2 3 4 5"}; KS=${KS:-"30"}; PARALLEL=${PARALLEL:-24}; EXTRA=${EXTRA:-}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUTDIR"
PY=$(command -v python3 || command -v python)
if [ -f "$BACKBONE/model16.safetensors" ] && [ ! -f "$BACKBONE/model.safetensors" ]; then
  "$PY" benchmarks/fp16_to_fp32.py "$BACKBONE" || exit 1
fi
for s in $SETS; do [ -f "$DATA/$s/meta.json" ] || { echo "missing $DATA/$s"; exit 1; }; done
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
"$PY" -c "import torch, transformers, sklearn; print('torch', torch.__version__, 'transformers', transformers.__version__, 'sklearn', sklearn.__version__)"
: > "$OUTDIR/commands.txt"
while IFS='|' read -r name methods sets seeds ks overrides; do
  [ -z "$name" ] && continue
  for k in ${ks:-$KS}; do
    for seed in ${seeds:-$SEEDS}; do
      for s in ${sets:-$SETS}; do
        echo "$PY -m list_core.bench --data $DATA/$s --k $k --seeds $seed --methods $methods --preset fast --backbone $BACKBONE $overrides $EXTRA --out $OUTDIR/$name-k$k-$s-s$seed.json > $OUTDIR/$name-k$k-$s-s$seed.log 2>&1" >> "$OUTDIR/commands.txt"
      done
    done
  done
done < "$CONFIGS"
echo "$(wc -l < "$OUTDIR/commands.txt") processes, $PARALLEL at a time, limit ${LIMIT}s"
start=$(date +%s)
timeout "$LIMIT" xargs -P "$PARALLEL" -I{} bash -c {} < "$OUTDIR/commands.txt"
rc=$?
echo "finished after $(( $(date +%s) - start ))s (rc $rc)"
for f in "$OUTDIR"/*.json; do
  "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[1], len(d['results']), 'runs')" "$f" 2>/dev/null || echo "$f unreadable"
done
grep -h "FAILED\|Error" "$OUTDIR"/*.log | head -20
