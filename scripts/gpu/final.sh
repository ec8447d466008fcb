#!/usr/bin/env bash
# The end-of-session GPU check, one call on a staged machine (after `source .gpu/setup.sh`, with
# .gpu/trtllm_routing_sm90a.so carried so the trtllm-gen routing module is not rebuilt):
#   bash scripts/gpu/final.sh
# A: run-layer with FlashInfer's own routing kernel feeding cuTile (MiniMax-M2.5 on GPU 0,
#    DeepSeek-V3 on GPU 1 when there is one); B: the single-GPU gpu tests; C: the 2-GPU tests.
# Results are copied to $OUT after every phase, so a cut-short call still returns what finished.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/final-out}
mkdir -p "$OUT"
[ -f .gpu/trtllm_routing_sm90a.so ] && export MOE_INSPECT_TRTLLM_ROUTING_SO=$PWD/.gpu/trtllm_routing_sm90a.so
ngpu=$(nvidia-smi -L 2>/dev/null | wc -l)
nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
RL="python3 -m moe_inspect.cli.app run-layer"
rl() {  # GPU model tag quant
  CUDA_VISIBLE_DEVICES=$1 timeout 240 $RL "$2" --offline --quant "$4" --routing kernel --tokens 1,16,128,1024 \
    --json > "$OUT/runlayer-$3-$4.json" 2> "$OUT/runlayer-$3-$4.err"
  echo "exit $?" >> "$OUT/runlayer-$3-$4.err"
}
step() { echo "$1 $(( $(date +%s) - $2 ))s" >> "$OUT/steps.txt"; }
t=$(date +%s)
if [ "$ngpu" -ge 2 ]; then
  (rl 0 MiniMaxAI/MiniMax-M2.5 minimax bf16; rl 0 MiniMaxAI/MiniMax-M2.5 minimax nvfp4) &
  (rl 1 deepseek-ai/DeepSeek-V3 dsv3 bf16; rl 1 deepseek-ai/DeepSeek-V3 dsv3 nvfp4) &
  wait
else
  rl 0 MiniMaxAI/MiniMax-M2.5 minimax bf16; rl 0 deepseek-ai/DeepSeek-V3 dsv3 bf16
fi
step A "$t"; t=$(date +%s)
CUDA_VISIBLE_DEVICES=0 timeout 300 python3 -m pytest -q -m gpu -rs -p no:cacheprovider \
  tests/test_layer_gpu.py tests/test_kernels_gpu.py tests/test_verify_gpu.py > "$OUT/tests-1gpu.log" 2>&1
step "B rc=$?" "$t"; t=$(date +%s)
if [ "$ngpu" -ge 2 ]; then
  timeout 240 python3 -m pytest -q -m gpu -rs -p no:cacheprovider tests/test_layer_multi_gpu.py > "$OUT/tests-2gpu.log" 2>&1
  step "C rc=$?" "$t"
fi
true
