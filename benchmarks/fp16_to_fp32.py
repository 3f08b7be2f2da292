"""Restore `model.safetensors` (fp32) from a `model16.safetensors` copy made to fit a size-limited transfer.

python benchmarks/fp16_to_fp32.py FOLDER
"""

import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

folder = Path(sys.argv[1])
sd = load_file(folder / "model16.safetensors")
save_file({k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}, folder / "model.safetensors")
print(f"{folder}: {len(sd)} tensors restored to fp32")
