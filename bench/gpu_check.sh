#!/usr/bin/env bash
# The GPU figures this project has not measured on a CPU, in one run under 8 minutes on a one-H200 machine:
#   1. install: pip install -e '.[gpu]' (official vLLM + ray[llm]) next to the machine's torch
#   2. training MFU: a ~1B LLaMA (random init, bf16, DeepSpeed ZeRO-2, packed 2048) through our SFT trainer
#   3. rollout throughput with --engine vllm on that ~1B model (rollout vs the raw engine)
# From the repository root: bash bench/gpu_check.sh. JSON and logs go to $OUT (default bench/results/gpu); the
# last line sums them up. A step that fails is recorded and the next one still runs.
set -uo pipefail
OUT=${OUT:-bench/results/gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 RAY_AUTH_MODE=disabled
started=$(date +%s)
say() { echo "[gpu_check $(($(date +%s) - started))s] $*"; }

say "1/3 install: pip install -e '.[gpu]' ($("$PY" -c 'import torch; print("torch", torch.__version__)'))"
if timeout 200 "$PY" -m pip install -q -e ".[gpu]" >"$OUT/install.log" 2>&1; then install=ok; else install=failed; fi
say "install $install (log: $OUT/install.log)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>&1

say "2/3 training MFU, ~1B LLaMA, ZeRO-2, bf16, packed 2048"
timeout 200 "$PY" bench/train_mfu.py --preset 1b --steps 25 --warmup 5 --output "$OUT/train_mfu.json" \
    --save-model "$OUT/model-1b" >"$OUT/train_mfu.log" 2>&1
train=$?
tail -n 2 "$OUT/train_mfu.log"

say "3/3 rollout throughput, vLLM engine, the ~1B model serving both roles"
timeout 220 "$PY" bench/rollout_throughput.py --engine vllm --model "$OUT/model-1b" --no-routing \
    --sessions 256 --in-flight 256 --kv-cache-gb 40 --output "$OUT/rollout_throughput.json" \
    >"$OUT/rollout.log" 2>&1
rollout=$?
tail -n 1 "$OUT/rollout.log"
rm -rf "$OUT/model-1b"  # 2 GB of random weights

"$PY" - "$OUT" "$install" "$train" "$rollout" <<'EOF'
import json, sys
from pathlib import Path
out, install, train, rollout = sys.argv[1:]
def read(name):
    path = Path(out, name)
    return json.loads(path.read_text()) if path.is_file() else None
summary = {"install": install, "train_exit": int(train), "rollout_exit": int(rollout),
           "gpu": Path(out, "gpu.txt").read_text().strip(),
           "train_mfu": read("train_mfu.json"), "rollout_throughput": read("rollout_throughput.json")}
Path(out, "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
mfu = (summary["train_mfu"] or {}).get("mfu")
vllm = ((summary["rollout_throughput"] or {}).get("engines") or {}).get("vllm") or {}
print(f"gpu_check: install {install}; training MFU {mfu} (exit {train}); vLLM rollout "
      f"{vllm.get('tokens_per_s')} tok/s = x{vllm.get('rollout_vs_raw')} of raw (exit {rollout}) -> {out}/gpu_check.json")
EOF
