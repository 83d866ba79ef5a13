#!/usr/bin/env bash
# A prepared check for a machine with a CUDA GPU. Run it from the repository root:
#   bash benchmarks/gpu_check.sh            (writes under $OUT, or benchmarks/results/)
# It runs the CUDA tests, CPU-vs-CUDA agreement, RSC15 training on the GPU and the 5M-event
# synthetic scale run, and copies the tables where they come back from the device.
set -uo pipefail
out="${OUT:-benchmarks/results/gpu}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$out/device.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_persistence.py tests/test_checkpoint.py \
    tests/test_reliability.py tests/test_estimator.py 2>&1 | tail -n 15 | tee "$out/tests.txt"
python3 benchmarks/bench_accuracy.py --only rsc15-best --device cuda --threads 1 --no-curves \
    --name gpu_rsc15 2>&1 | tee "$out/rsc15_cuda.txt"
python3 benchmarks/bench_accuracy.py --only rsc15-best --device cpu --threads 1 --no-curves \
    --epochs 1 --name cpu_rsc15 2>&1 | tee "$out/rsc15_cpu_1epoch.txt"
python3 benchmarks/bench_scale.py --full --device cuda --name gpu_scale 2>&1 | tee "$out/scale_cuda.txt"
