#!/usr/bin/env bash
# The issue-10 benchmark on one GPU machine, every method on that machine: K=30 and K=10, 5 seeds, 4 sets
# (benchmarks/gpu_configs_k10k30.txt), then one merged results file and the logs in OUT.
#
#   OUT=/some/dir bash benchmarks/gpu_k10k30.sh SECONDS
#
# Carried: .gpu/minilm (the default backbone, fp16), .gpu/data (../shared/data), .whl (SetFit and the packages it
# needs that the GPU image lacks).
set -u
LIMIT=${1:-540}; OUT=${OUT:?OUT}
WHEELS=${WHEELS:-.whl}
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -c "import setfit, datasets; print('setfit', setfit.__version__, 'datasets', datasets.__version__)" 2>&1 | tail -1
GB=${GB:-/tmp/gb}
KS=${KS:-"30 10"} PARALLEL=${PARALLEL:-36} BACKBONE=${BACKBONE:-.gpu/minilm} DATA=${DATA:-.gpu/data} \
  bash benchmarks/gpu_bench.sh "$GB" "$LIMIT" benchmarks/gpu_configs_k10k30.txt
python3 -m list_core.bench --merge "$GB"/*.json --out "$OUT/k10k30_gpu.json" \
  --command "OUT=... bash benchmarks/gpu_k10k30.sh $LIMIT   # one call on the GPU machine (gpu_bench.sh, PARALLEL=${PARALLEL:-36})"
tar czf "$OUT/logs.tgz" -C "$GB" . 2>/dev/null
python3 -m list_core.bench --summary "$OUT/k10k30_gpu.json" > "$OUT/summary.json" && head -c 3000 "$OUT/summary.json"
