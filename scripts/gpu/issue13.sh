#!/usr/bin/env bash
# Issue 13 GPU work on the 2xH200 machine. From the project root, after `source .gpu/setup.sh`:
#   bash scripts/gpu/issue13.sh link mg-minimax-bf16 single-bf16 ...      (steps below, in order given)
# Every step has its own time limit; results are re-packed into $OUT/issue13.tgz after each step,
# so whatever finished comes back even if the call is cut short. NVLink multicast stays off.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/issue13-out}
R=/tmp/issue13-results
mkdir -p "$OUT" "$R"
RL="python3 -m moe_inspect.cli.app run-layer"
REP=${REP:-20}
pack() { tar czf "$OUT/issue13.tgz" -C "$R" . 2>/dev/null; cp "$R/steps.txt" "$OUT/steps.txt" 2>/dev/null; true; }
mg() {  # model tag quant: TP 2 and EP 2 (all-to-all over 2 DP ranks) on the same tokens
  timeout "${4:-200}" $RL "$1" --offline --quant "$3" --act bf16 --tp 2 --compare-tp-ep --tokens 1,16,128,1024 \
    --repeat-ms "$REP" --json > "$R/mg-$2-$3.json" 2> "$R/mg-$2-$3.err"
}
single() {  # GPU model tag quant: one GPU, FlashInfer + the grouped-GEMM peer
  CUDA_VISIBLE_DEVICES=$1 timeout "${5:-240}" $RL "$2" --offline --quant "$4" --act bf16 --tokens 1,16,128,1024 \
    --repeat-ms "$REP" --json > "$R/single-$3-$4.json" 2> "$R/single-$3-$4.err"
}
for step in "$@"; do
  start=$(date +%s)
  case $step in
    link)
      nvidia-smi topo -m > "$R/topo.txt" 2>&1
      nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv >> "$R/topo.txt" 2>&1
      timeout 120 python3 scripts/gpu/issue13_link.py > "$R/link.json" 2> "$R/link.err" ;;
    mg-minimax-bf16) mg MiniMaxAI/MiniMax-M2.5 minimax bf16 ;;
    mg-minimax-nvfp4) mg MiniMaxAI/MiniMax-M2.5 minimax nvfp4 ;;
    mg-dsv3-bf16) mg deepseek-ai/DeepSeek-V3 dsv3 bf16 ;;
    mg-dsv3-nvfp4) mg deepseek-ai/DeepSeek-V3 dsv3 nvfp4 ;;
    single-bf16)  # both models at once, one per GPU
      single 0 MiniMaxAI/MiniMax-M2.5 minimax bf16 & single 1 deepseek-ai/DeepSeek-V3 dsv3 bf16 & wait ;;
    single-nvfp4)
      single 0 MiniMaxAI/MiniMax-M2.5 minimax nvfp4 & single 1 deepseek-ai/DeepSeek-V3 dsv3 nvfp4 & wait ;;
    tests)
      timeout 300 python3 -m pytest -q -m gpu tests/test_layer_multi_gpu.py -rs > "$R/tests.log" 2>&1 ;;
    *) echo "unknown step $step" ;;
  esac
  echo "$step rc=$? $(( $(date +%s) - start ))s" | tee -a "$R/steps.txt"
  pack
done
