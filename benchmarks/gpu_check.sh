#!/usr/bin/env bash
# One device check: engine and export tests on CUDA (bf16 autocast), then the engine and export benchmarks on a
# random roberta-large-sized model. Usage: bash benchmarks/gpu_check.sh (needs a GPU)
set -u
export PYTHONUNBUFFERED=1 LIST_TEST_TOKENIZER=${LIST_TEST_TOKENIZER:-.gpu/tok}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
LIST_TEST_DEVICE=cuda timeout 150 python3 -m pytest -q -x -p no:cacheprovider tests/test_self_training.py 2>&1 | tail -3
timeout 150 python3 benchmarks/engine_speed.py --random-family roberta-large --n 4000 --batch 64 --steps 10 2>&1 | grep -v -i warn
timeout 240 python3 benchmarks/export_speed.py --random-family roberta-large --n 2000 --batch 64 2>&1 | grep -v -i "warn\|Writing\|Loading"
