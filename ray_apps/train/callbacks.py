"""Trainer callbacks: progress users can watch (logs, Ray metrics), an eval of the last step and a test-only
failure."""

from __future__ import annotations

import time

from transformers import TrainerCallback

from .sft import TokenCounter

#: What a worker reports as gauges ``realm_train_<name>`` (tag ``role``).
GAUGES = ("step", "loss", "learning_rate", "tokens_per_second", "packing_efficiency", "eta_seconds")


class ProgressCallback(TrainerCallback):
    """Adds tokens/s, packing efficiency and ETA to every log; prints a line; sets Ray gauges. Tokens/s is of
    training: the collator builds the eval batches too, so the tokens and seconds of eval passes (each between a
    step's end and ``on_evaluate``) are left out."""

    def __init__(self, counter: TokenCounter, role: str):
        self.counter = counter
        self.role = role
        self.gauges = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started, self.start_step = time.time(), state.global_step
        self.counted_from = self.counter.real
        self.eval_tokens, self.eval_seconds = 0, 0.0
        self._mark()

    def _mark(self) -> None:
        self.mark = (self.counter.real, time.time())

    def on_step_end(self, args, state, control, **kwargs):
        self._mark()

    def on_evaluate(self, args, state, control, **kwargs):
        tokens, at = self.mark
        self.eval_tokens += self.counter.real - tokens
        self.eval_seconds += time.time() - at
        self._mark()

    def tokens_per_second(self) -> float:
        """Real training tokens per second of training so far (on this worker)."""
        seconds = max(time.time() - self.started - self.eval_seconds, 1e-9)
        return round((self.counter.real - self.counted_from - self.eval_tokens) / seconds, 1)

    def _gauges(self):
        if self.gauges is None:
            from ray.util.metrics import Gauge

            self.gauges = {
                n: Gauge(f"realm_train_{n}", description=f"Training {n.replace('_', ' ')}", tag_keys=("role",))
                for n in GAUGES
            }
        return self.gauges

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "eval_loss" in logs and state.log_history:  # when each eval loss was reached: loss per minute
            state.log_history[-1]["seconds"] = round(time.time() - self.started, 1)
        if logs is None or "loss" not in logs:
            return
        elapsed = max(time.time() - self.started, 1e-9)
        steps = max(state.global_step - self.start_step, 1)
        extra = {
            "tokens_per_second": self.tokens_per_second(),
            "packing_efficiency": round(self.counter.efficiency, 4),
            "eta_seconds": round((state.max_steps - state.global_step) * elapsed / steps, 1),
        }
        logs.update(extra)
        if state.log_history:
            state.log_history[-1].update(extra)
        if not state.is_world_process_zero:
            return
        print(
            f"[train {self.role}] step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f} "
            f"lr {logs.get('learning_rate', 0):.2e} tokens/s {extra['tokens_per_second']:.0f} "
            f"packing {extra['packing_efficiency']:.3f} eta {extra['eta_seconds']:.0f}s",
            flush=True,
        )
        values = {
            "step": state.global_step,
            "loss": logs["loss"],
            "learning_rate": logs.get("learning_rate", 0),
            **extra,
        }
        for name, gauge in self._gauges().items():
            gauge.set(float(values[name]), tags={"role": self.role})


class EvaluateLastStep(TrainerCallback):
    """The last step is evaluated too, not only every ``train.eval_steps``: the eval loss after training is the
    exported model's (and a large ``eval_steps`` evaluates before and after only)."""

    def on_step_end(self, args, state, control, **kwargs):
        if args.eval_strategy != "no" and state.global_step >= state.max_steps:
            control.should_evaluate = True


class FailOnce(TrainerCallback):
    """Testing only (``train.fail_at_step``): raise at a step of a run that did not resume."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError(f"train.fail_at_step={self.step}: failing on purpose to exercise recovery")
