"""Torch helpers shared by the experiments that train networks: reproducible threads and
devices, and the optimisers of the batched ensembles (E2, E4)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from ..errors import check_int

#: Adam's epsilon, torch.optim's default: the stacked optimisers and the reference trainers use it alike.
ADAM_EPS = 1e-8
#: The torch type of each ``dtype`` a trainer takes.
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@contextlib.contextmanager
def reproducible(threads: int, device: torch.device) -> Iterator[None]:
    """Fix the intra-op thread count and, on CUDA, use deterministic algorithms; restore both after.

    On the CPU every operation the trainers use is deterministic for a fixed thread count
    (repeat runs are bit-identical, which the tests check), and switching deterministic
    mode on would import torch's compiler stack, 1.2 s: as long as a whole E2 width-40 run.
    """
    threads = check_int(threads, "threads", 1)
    previous_threads = torch.get_num_threads()
    cuda = device.type == "cuda"
    if cuda:
        previous_deterministic = torch.are_deterministic_algorithms_enabled()
        previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        previous_fill = torch.utils.deterministic.fill_uninitialized_memory
        # Deterministic cuBLAS needs a fixed workspace; torch refuses matmuls in
        # deterministic mode without it.  It must be set before cuBLAS's first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # index_add_ and scatter_add_ (E4's table gradients) then accumulate in a fixed order.
        torch.use_deterministic_algorithms(True)
        # Deterministic mode also fills every new tensor with NaN, a guard against reading
        # uninitialised memory, which nothing here does; it only costs time.
        torch.utils.deterministic.fill_uninitialized_memory = False
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        if cuda:
            torch.utils.deterministic.fill_uninitialized_memory = previous_fill
            torch.use_deterministic_algorithms(previous_deterministic, warn_only=previous_warn_only)


# ---------------------------------------------------------------------------
# optimisers on stacked tensors: the leading dimension indexes the ensemble's members
# ---------------------------------------------------------------------------


class StackedSGD:
    """Plain SGD on stacked tensors: torch.optim.SGD's arithmetic (no momentum, no decay)."""

    def __init__(self, params: list[torch.Tensor], lr: float) -> None:
        self.params, self.lr = params, lr

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> None:
        for p, g in zip(self.params, grads):
            p.add_(g, alpha=-self.lr)


class StackedAdamW:
    """AdamW on stacked tensors, reproducing torch.optim.AdamW's single-tensor arithmetic
    (with ``weight_decay`` 0, that of torch.optim.Adam).

    Every operation is elementwise, so a stacked update equals the members' own updates.
    """

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float], weight_decay: float = 0.0) -> None:
        self.params, self.lr, self.betas, self.weight_decay = params, lr, betas, weight_decay
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> None:
        beta1, beta2 = self.betas
        self.t += 1
        bias_correction1 = 1 - beta1**self.t
        bias_correction2_sqrt = (1 - beta2**self.t) ** 0.5
        step_size = self.lr / bias_correction1
        for p, g, m, v in zip(self.params, grads, self.exp_avg, self.exp_avg_sq):
            if self.weight_decay != 0:
                p.mul_(1 - self.lr * self.weight_decay)  # decoupled decay, before the moment update
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (v.sqrt() / bias_correction2_sqrt).add_(ADAM_EPS)
            p.addcdiv_(m, denom, value=-step_size)
