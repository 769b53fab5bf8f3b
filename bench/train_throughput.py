"""Training throughput: padding-free packing against pad-to-longest batches, side by side.

    .venv/bin/python bench/train_throughput.py [--steps 20] [--rounds 2]

One model (a small LLaMA, random init), one ShareGPT-like length distribution (many short
conversations, a long tail), the same SFT trainer; only `train.packing` differs. Rounds
alternate the two modes so machine noise hits both. Writes bench/results/train_throughput.json
and prints one summary line last. Targets: packing efficiency >= 0.95, packed real-token
throughput >= 1.5x padded.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import datasets  # noqa: E402
import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from ray_apps.config import load_config  # noqa: E402
from ray_apps.models.tokenizer import train_tokenizer  # noqa: E402
from ray_apps.train.sft import build_trainer  # noqa: E402

WORDS = (
    "the a to of and in is it you that for on with how can what my this do be are use your about "
    "python list error data model train loss file code function value question answer time way"
).split()


def conversations(n: int, seed: int) -> list[list[dict]]:
    """Lengths drawn log-normally (median ~150 words, a tail past 1,000), 1-6 exchanges each."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        total = min(int(rng.lognormvariate(5.0, 0.9)), 3000)
        exchanges = rng.randint(1, 6)
        messages = []
        for i in range(exchanges):
            share = max(4, total // exchanges)
            messages.append({"role": "user", "content": " ".join(rng.choices(WORDS, k=max(3, share // 4))) + "?"})
            messages.append({"role": "assistant", "content": " ".join(rng.choices(WORDS, k=share))})
        out.append(messages)
    return out


def run(mode: str, model_dir: str, tokenizer, data, steps: int) -> dict:
    packed = mode == "packed"
    cfg = load_config(
        ROOT / "configs" / "tiny.yaml",
        [
            f"train.packing={str(packed).lower()}",
            "train.max_length=1024",
            f"train.per_device_batch_size={1 if packed else 8}",
            f"train.effective_batch_size={1 if packed else 8}",
            f"train.max_steps={steps}",
            "train.num_workers=1",  # one in-process trainer
            "train.save_steps=100000",
            "train.logging_steps=100000",
        ],
    ).train
    with tempfile.TemporaryDirectory() as out:
        trainer, counter = build_trainer(cfg, model_dir, tokenizer, data, None, out, use_deepspeed=False)
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    return {
        "mode": mode,
        "steps": steps,
        "seconds": round(seconds, 2),
        "real_tokens": counter.real,
        "processed_tokens": counter.processed,
        "packing_efficiency": round(counter.efficiency, 4),
        "real_tokens_per_second": round(counter.real / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "train_throughput.json"))
    args = parser.parse_args()

    torch.manual_seed(0)
    convs = conversations(args.conversations, seed=1)
    tokenizer = train_tokenizer((m["content"] for c in convs[:500] for m in c), vocab_size=2000)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=256,
            intermediate_size=688,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    data = datasets.Dataset.from_list([{"messages": c} for c in convs])
    runs = []
    with tempfile.TemporaryDirectory() as model_dir:
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        for _ in range(args.rounds):
            for mode in ("padded", "packed"):
                runs.append(run(mode, model_dir, tokenizer, data, args.steps))
                print(json.dumps(runs[-1]), flush=True)

    def median(mode, key):
        return statistics.median(r[key] for r in runs if r["mode"] == mode)

    result = {
        "machine": "CPU" if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        "model_parameters": sum(p.numel() for p in model.parameters()),
        "runs": runs,
        "packed_efficiency": median("packed", "packing_efficiency"),
        "padded_efficiency": median("padded", "packing_efficiency"),
        "speedup_real_tokens": round(
            median("packed", "real_tokens_per_second") / median("padded", "real_tokens_per_second"), 3
        ),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"train throughput: packed {median('packed', 'real_tokens_per_second'):.0f} real tok/s "
        f"(efficiency {result['packed_efficiency']:.3f}) vs padded {median('padded', 'real_tokens_per_second'):.0f} "
        f"(efficiency {result['padded_efficiency']:.3f}): x{result['speedup_real_tokens']:.2f} -> {args.output}"
    )


if __name__ == "__main__":
    main()
