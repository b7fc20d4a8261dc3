#!/usr/bin/env bash
# GPU checks in a few minutes: the GPU-marked tests, then training throughput of the
# seed-sweep configuration (D=16, K=64, d_model 128, 2 layers, batch 1024) in float32,
# bf16 autocast and bf16 + torch.compile, then four concurrent float32 runs sharing the GPU.
#
#   bash benchmarks/gpu_check.sh            # needs torch with CUDA and a visible GPU
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import lrpfn" 2>/dev/null || python3 -m pip install --quiet -e ".[test]"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'; print('torch', torch.__version__)"

echo "== GPU tests"
python3 -m pytest -q -m gpu -p no:cacheprovider

bench=(python3 benchmarks/bench_train.py --device cuda --warmup 30 --steps 300)
echo "== training throughput, one run"
"${bench[@]}"
"${bench[@]}" --precision bfloat16
"${bench[@]}" --precision bfloat16 --compile
echo "== batches drawn on the GPU instead of the CPU (what drawing them on the CPU costs)"
"${bench[@]}" --draw-on device
"${bench[@]}" --precision bfloat16 --compile --draw-on device

echo "== four float32 runs at once on one GPU (compare 4x their steps/s with one run's)"
for i in 1 2 3 4; do "${bench[@]}" > "${TMPDIR:-/tmp}/lrpfn_concurrent_$i.txt" & done
wait
cat "${TMPDIR:-/tmp}"/lrpfn_concurrent_[1-4].txt | grep steps/s
