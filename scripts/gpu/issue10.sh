#!/usr/bin/env bash
# Issue 10 GPU work (2xH200 machine, GPU 0). Run from the project root after `source .gpu/setup.sh`:
#   bash scripts/gpu/issue10.sh build capture          # first call: build sm_90a routing, capture vectors
#   bash scripts/gpu/issue10.sh verify tests runlayer  # later: verify --kernel, gpu tests, run-layer
# A prebuilt module (from a previous `build`, carried as .gpu/trtllm_routing_sm90a.so) skips the
# ~5 min build: MOE_INSPECT_TRTLLM_ROUTING_SO points at it. Everything lands in $OUT.
set -u
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/issue10-out}
mkdir -p "$OUT"
if [ -f .gpu/trtllm_routing_sm90a.so ] && [ -z "${MOE_INSPECT_TRTLLM_ROUTING_SO:-}" ]; then
  export MOE_INSPECT_TRTLLM_ROUTING_SO=$PWD/.gpu/trtllm_routing_sm90a.so
fi
nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
nvcc --version 2>&1 | tail -2 >> "$OUT/gpu.txt"
for step in "$@"; do
  start=$(date +%s)
  case $step in
    build|capture|verify|probe)
      python3 scripts/gpu/issue10.py "$step" "$OUT" > "$OUT/$step.log" 2>&1 ;;
    tests)
      python3 -m pytest -q -m gpu tests/test_verify_gpu.py tests/test_kernels_gpu.py -rs > "$OUT/tests.log" 2>&1 ;;
    runlayer)
      for m in MiniMaxAI/MiniMax-M2.5 deepseek-ai/DeepSeek-V3; do
        f=$(echo "$m" | tr '/' '_')
        python3 -c "from moe_inspect.cli.app import main; main()" run-layer "$m" --offline --quant bf16 \
          --routing kernel --tokens 1,16,128 --json > "$OUT/runlayer_$f.json" 2> "$OUT/runlayer_$f.err"
        echo "exit $?" >> "$OUT/runlayer_$f.err"
      done ;;
  esac
  echo "$step rc=$? $(( $(date +%s) - start ))s" | tee -a "$OUT/steps.txt"
done
