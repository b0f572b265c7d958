#!/usr/bin/env bash
# The measurements that need a GPU, in one command for a lent device machine (BENCHMARKS.md, "On a GPU"):
# correctness of mixed precision and of the fast paths against the CPU (gpu_check.py), then raw forward against
# end-to-end encoding throughput of base-size stand-ins (gpu_throughput.py). Figures go to $OUT (default gpu_out/),
# written as they come, so a timeout still leaves what was measured.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_out}"
PYTHON="${PYTHON:-python}"
mkdir -p "$OUT"
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
"$PYTHON" scripts/gpu_check.py --out "$OUT/gpu_check.json" 2> "$OUT/gpu_check.log" | tee "$OUT/gpu_check.txt"
"$PYTHON" scripts/gpu_throughput.py --out "$OUT/gpu_throughput.json" 2> "$OUT/gpu_throughput.log" | tee "$OUT/gpu_throughput.txt"
