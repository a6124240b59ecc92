"""The project's seed model and its synthetic regression task."""

from __future__ import annotations

import torch
from torch import nn

INPUT_DIM = 1000
HIDDEN_DIMS = (500, 100)
OUTPUT_DIM = 1
# Every synthetic batch is drawn from its own generator seeded with SEED_STRIDE * seed + step,
# so a resumed run sees exactly the batches an uninterrupted one would have.
SEED_STRIDE = 1_000_003


def build_mlp(seed: int = 0) -> nn.Sequential:
    """Linear(1000->500) -> ReLU -> Linear(500->100) -> ReLU -> Linear(100->1), initialised
    from ``seed``."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(INPUT_DIM, HIDDEN_DIMS[0]),
        nn.ReLU(),
        nn.Linear(HIDDEN_DIMS[0], HIDDEN_DIMS[1]),
        nn.ReLU(),
        nn.Linear(HIDDEN_DIMS[1], OUTPUT_DIM),
    )


def resolve_device(choice: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without CUDA raises RuntimeError."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(choice)


class SyntheticTask:
    """``y = sin(x . w) + 0.1 * noise`` with ``w`` fixed by ``seed``: learnable, not trivial."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.seed = seed
        self.device = device
        weights = torch.Generator().manual_seed(seed)
        self._w = (torch.randn(INPUT_DIM, 1, generator=weights) / INPUT_DIM**0.5).to(device)

    def batch(self, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``(batch_size, 1000)`` and targets ``(batch_size, 1)`` for ``step``."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(SEED_STRIDE * self.seed + step)
        x = torch.randn(batch_size, INPUT_DIM, generator=generator, device=self.device)
        noise = torch.randn(batch_size, 1, generator=generator, device=self.device)
        return x, torch.sin(x @ self._w) + 0.1 * noise
