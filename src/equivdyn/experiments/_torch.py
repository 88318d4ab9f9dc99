"""Torch helpers shared by the experiments that train networks (E2, E4)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from ..errors import check_int


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
