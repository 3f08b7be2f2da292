#!/usr/bin/env bash
# One device check: engine tests on CUDA (bf16 autocast) and the engine speed benchmark on a random
# roberta-large-sized model. Usage: bash benchmarks/gpu_check.sh  (needs a GPU; writes to $OUT if set)
set -u
export PYTHONUNBUFFERED=1 LIST_TEST_TOKENIZER=${LIST_TEST_TOKENIZER:-.gpu/tok}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
LIST_TEST_DEVICE=cuda timeout 200 python3 -m pytest -q -x -p no:cacheprovider tests/test_self_training.py 2>&1 | tail -15
timeout 300 python3 benchmarks/engine_speed.py --random-family roberta-large --n 4000 --batch 64 --steps 10 2>&1 | grep -v -i warn
