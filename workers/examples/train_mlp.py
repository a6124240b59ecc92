"""Train the seed MLP on synthetic data: the example training job.

``python -m workers.examples.train_mlp --steps 200 --checkpoint ckpt.pt``

With ``--checkpoint`` the trainer saves every ``--checkpoint-every`` steps, at the end, and
when SIGTERM or SIGINT arrives (then exits ``128 + signal``): that is how an interruptible job
is suspended. Started again with the same checkpoint, it resumes after the saved step, seeing
exactly the batches an uninterrupted run would. ``--checkpoint`` defaults to
``$GREENLIGHT_CHECKPOINT``. Prints ``step=N loss=X`` lines to stdout. Reports its step count
(the global step, resumed from the checkpoint) through ``workers.units``: SCI's functional unit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch import nn

from workers.examples.model import SyntheticTask, build_mlp, resolve_device
from workers.units import UnitCounter


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    steps: int
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    checkpoint: Path | None = None
    checkpoint_every: int = 100
    log_every: int = 10


class _StopFlag:
    """Remembers the first stop signal; the loop checks it between steps."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum


def save_checkpoint(
    path: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig
) -> None:
    """Write atomically (temp file + rename) so a kill mid-save never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(
        {
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "seed": config.seed,
            "batch_size": config.batch_size,
        },
        tmp,
    )
    os.replace(tmp, path)


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any] | None:
    """The saved state, or None when there is no checkpoint yet."""
    if not path.exists():
        return None
    state: dict[str, Any] = torch.load(path, map_location=device, weights_only=True)
    return state


def train(config: TrainConfig, stop: _StopFlag | None = None) -> tuple[int, float]:
    """Train to ``config.steps``; returns ``(last step done, its loss)``. A stop signal ends
    early after checkpointing (the step returned is the one saved)."""
    device = resolve_device(config.device)
    model = build_mlp(config.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    task = SyntheticTask(config.seed, device)
    step, loss_value = 0, float("nan")
    if config.checkpoint is not None:
        state = load_checkpoint(config.checkpoint, device)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            step = int(state["step"])
            print(f"resumed from step={step} checkpoint={config.checkpoint}", flush=True)
    print(
        f"training on {device} from step={step} to step={config.steps} "
        f"batch_size={config.batch_size}",
        flush=True,
    )
    loss_fn = nn.MSELoss()
    steps_done = UnitCounter("steps")
    steps_done.set_total(step)
    while step < config.steps:
        if stop is not None and stop.signum is not None:
            break
        x, y = task.batch(step, config.batch_size)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        step += 1
        steps_done.set_total(step)
        if step % config.log_every == 0 or step == config.steps:
            loss_value = loss.item()
            print(f"step={step} loss={loss_value:.6f}", flush=True)
        if config.checkpoint is not None and step % config.checkpoint_every == 0:
            save_checkpoint(config.checkpoint, step, model, optimizer, config)
    steps_done.flush()
    if config.checkpoint is not None:
        save_checkpoint(config.checkpoint, step, model, optimizer, config)
        reason = "signal" if step < config.steps else "done"
        print(f"checkpoint saved step={step} reason={reason}", flush=True)
    return step, loss_value


def parse_args(argv: Sequence[str]) -> TrainConfig:
    parser = argparse.ArgumentParser(
        prog="python -m workers.examples.train_mlp", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--checkpoint", type=Path, default=os.environ.get("GREENLIGHT_CHECKPOINT") or None
    )
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--log-every", type=int, default=10)
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    stop = _StopFlag()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        step, loss = train(config, stop)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if stop.signum is not None and step < config.steps:
        print(f"stopped by signal {stop.signum} at step={step}", flush=True)
        return 128 + stop.signum
    print(f"done step={step} loss={loss:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
