"""Training model FLOPs utilisation: our SFT trainer (TRL, DeepSpeed ZeRO-2, bf16, padding-free packing) on a ~1B
LLaMA with random weights, one GPU.

    python bench/train_mfu.py [--preset 1b|tiny] [--steps 30] [--max-length 2048] [--peak-tflops 989]

MFU = model FLOPs per second / the chip's peak, with the model FLOPs of a token counted as in PaLM (Chowdhery et al.
2022, appendix B): 6 N + 12 L H Q T (N parameters without the embeddings, L layers, H heads, Q head size, T the
packed sequence length; forward and backward, no recomputation). The first --warmup steps are not timed. Peak
defaults to the H200's dense bf16 figure (989 TFLOP/s). Writes bench/results/train_mfu.json and prints the formula
and one summary line last. `--preset tiny` checks the script on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import datasets  # noqa: E402
import torch  # noqa: E402
from train_throughput import conversations  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback  # noqa: E402

from ray_apps.config import load_config  # noqa: E402
from ray_apps.models.tokenizer import train_tokenizer  # noqa: E402
from ray_apps.train.sft import build_trainer  # noqa: E402

PRESETS = {  # the 1b preset is TinyLlama-1.1B's shape, with our small tokenizer's vocabulary (0.97B parameters)
    "1b": {
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 22,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
    },
    "tiny": {
        "hidden_size": 128,
        "intermediate_size": 344,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
}


class StepClock(TrainerCallback):
    """Wall time at the end of each optimizer step (CUDA synchronised)."""

    def __init__(self):
        self.times: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="1b")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=8, help="packed rows per optimizer step")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the chip's dense bf16 peak")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "train_mfu.json"))
    parser.add_argument("--save-model", default=None, help="also save the random-init model here (bf16 on GPU)")
    args = parser.parse_args()

    gpu = torch.cuda.is_available()
    # One process is its own DeepSpeed world.
    os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"})
    os.environ.setdefault("MASTER_PORT", "29511")
    if not gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    torch.manual_seed(0)
    shape = PRESETS[args.preset]
    convs = conversations(20000 if args.preset == "1b" else 500, seed=1)
    tokenizer = train_tokenizer((m["content"] for c in convs[:500] for m in c), vocab_size=2000)
    config = LlamaConfig(
        **shape,
        vocab_size=len(tokenizer),
        max_position_embeddings=args.max_length,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    if args.save_model:  # e.g. for bench/rollout_throughput.py --model
        (model.to(torch.bfloat16) if gpu else model).save_pretrained(args.save_model)
        tokenizer.save_pretrained(args.save_model)
        model = model.float()
    params = sum(p.numel() for p in model.parameters())
    non_embedding = (
        params
        - model.get_input_embeddings().weight.numel()
        - (0 if config.tie_word_embeddings else model.get_output_embeddings().weight.numel())
    )
    heads, layers = config.num_attention_heads, config.num_hidden_layers
    head_dim = shape["hidden_size"] // heads
    flops_per_token = 6 * non_embedding + 12 * layers * heads * head_dim * args.max_length
    cfg = load_config(
        ROOT / "configs" / "tiny.yaml",
        [
            "train.packing=true",
            f"train.max_length={args.max_length}",
            "train.per_device_batch_size=1",
            f"train.effective_batch_size={args.batch}",
            f"train.max_steps={args.steps}",
            f"train.bf16={str(gpu).lower()}",
            "train.zero_stage=2",
            "train.num_workers=1",  # one in-process trainer
            "train.save_steps=100000",
            "train.logging_steps=100000",
        ],
    ).train
    clock = StepClock()
    with tempfile.TemporaryDirectory() as model_dir, tempfile.TemporaryDirectory() as out:
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        del model
        data = datasets.Dataset.from_list([{"messages": c} for c in convs])
        trainer, counter = build_trainer(cfg, model_dir, tokenizer, data, None, out, use_deepspeed=True)
        trainer.add_callback(clock)
        trainer.train()
    timed = clock.times[args.warmup :]
    seconds = timed[-1] - timed[0]
    steps = len(timed) - 1
    tokens_per_step = counter.processed / len(clock.times)  # packed rows are full: processed ~ steps x batch x T
    tokens_per_s = tokens_per_step * steps / seconds
    tflops = flops_per_token * tokens_per_s / 1e12
    result = {
        "device": torch.cuda.get_device_name() if gpu else "CPU",
        "preset": args.preset,
        "parameters": params,
        "non_embedding_parameters": non_embedding,
        "max_length": args.max_length,
        "rows_per_step": args.batch,
        "zero_stage": 2,
        "bf16": gpu,
        "packing_efficiency": round(counter.efficiency, 4),
        "timed_steps": steps,
        "tokens_per_second": round(tokens_per_s, 1),
        "model_tflops_per_second": round(tflops, 2),
        "peak_tflops": args.peak_tflops,
        "mfu": round(tflops / args.peak_tflops, 4),
        "formula": "MFU = (6*N + 12*L*H*Q*T) * tokens_per_s / peak; "
        f"N={non_embedding:,} L={layers} H={heads} Q={head_dim} T={args.max_length}",
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(result["formula"])
    print(
        f"train_mfu: {args.preset} LLaMA ({params / 1e9:.2f}B parameters), ZeRO-2, packed {args.max_length}: "
        f"{tokens_per_s:,.0f} tok/s = {tflops:.1f} TFLOP/s = MFU {result['mfu']:.3f} of {args.peak_tflops:g} "
        f"-> {args.output}"
    )


if __name__ == "__main__":
    main()
