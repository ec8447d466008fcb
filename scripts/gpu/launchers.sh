#!/usr/bin/env bash
# run-layer's launch paths on a staged 2-GPU machine (after `source .gpu/setup.sh`):
#   bash scripts/gpu/launchers.sh
# A: --tp 2 under torchrun (2 processes started by torchrun, rank 0 prints); B: the same layout spawned
# by run-layer itself; C: --autotune twice on one GPU (the second run must read FlashInfer's tactic cache).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/launchers-out}
mkdir -p "$OUT"
[ -f .gpu/trtllm_routing_sm90a.so ] && export MOE_INSPECT_TRTLLM_ROUTING_SO=$PWD/.gpu/trtllm_routing_sm90a.so
export MOE_INSPECT_AUTOTUNE_DIR=/tmp/moe-inspect-autotune-cache
LOG=$OUT/launchers.log
M=MiniMaxAI/MiniMax-M2.5
RL=(-m moe_inspect.cli.app run-layer "$M" --offline --quant bf16)
step() { echo "== $1 exit $2 $(( $(date +%s) - $3 ))s" >> "$LOG"; }
t=$(date +%s)
timeout 240 python3 -m torch.distributed.run --nproc-per-node 2 "${RL[@]}" --tp 2 --tokens 1,128 --json \
  > "$OUT/torchrun-tp2.json" 2>> "$LOG"
step "A torchrun --tp 2" $? "$t"; t=$(date +%s)
timeout 240 python3 "${RL[@]}" --tp 2 --tokens 1,128 --json > "$OUT/spawn-tp2.json" 2>> "$LOG"
step "B spawn --tp 2" $? "$t"; t=$(date +%s)
CUDA_VISIBLE_DEVICES=0 timeout 200 python3 "${RL[@]}" --tokens 128 --autotune --json > "$OUT/autotune-1.json" 2>> "$LOG"
step "C1 --autotune" $? "$t"; t=$(date +%s)
CUDA_VISIBLE_DEVICES=0 timeout 200 python3 "${RL[@]}" --tokens 128 --json > "$OUT/autotune-2.json" 2>> "$LOG"
step "C2 cached" $? "$t"
ls -la "$MOE_INSPECT_AUTOTUNE_DIR" >> "$LOG" 2>&1
true
