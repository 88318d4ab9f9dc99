"""The AUC helper of ``benchmarks/dsa_head_to_head.py`` on hand-made scores (no dsa-metric needed)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dsa_head_to_head.py"


@pytest.fixture(scope="module")
def auc() -> Callable[..., float]:
    spec = importlib.util.spec_from_file_location("dsa_head_to_head", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.auc


def test_perfectly_separated(auc: Callable[..., float]) -> None:
    assert auc([3.0, 4.0, 5.0], [0.0, 1.0, 2.0]) == 1.0


def test_reversed(auc: Callable[..., float]) -> None:
    assert auc([0.0, 1.0], [2.0, 3.0, 4.0]) == 0.0


def test_identical_scores(auc: Callable[..., float]) -> None:
    assert auc([1.0, 1.0, 1.0], [1.0, 1.0]) == 0.5
    assert auc([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0.5


def test_ties_count_half(auc: Callable[..., float]) -> None:
    # pairs (pos, neg): (1,1) tie, (1,0) win, (2,1) win, (2,0) win -> (3 + 0.5) / 4
    assert auc([1.0, 2.0], [1.0, 0.0]) == pytest.approx(3.5 / 4)


def test_matches_rank_sum(auc: Callable[..., float]) -> None:
    """Mann-Whitney U from mid-ranks, on integer scores with many ties."""
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 30).astype(float), rng.integers(0, 4, 20).astype(float)
    pooled = np.concatenate([pos, neg])
    ranks = np.empty(pooled.size)
    for value in np.unique(pooled):
        where = pooled == value
        below = np.count_nonzero(pooled < value)
        ranks[where] = below + (np.count_nonzero(where) + 1) / 2
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    assert auc(pos, neg) == pytest.approx(u / (pos.size * neg.size))


@pytest.mark.parametrize("pos, neg", [([], [1.0]), ([1.0], []), ([np.nan], [1.0]), ([1.0], [np.inf])])
def test_rejects_empty_or_non_finite(auc: Callable[..., float], pos: list[float], neg: list[float]) -> None:
    with pytest.raises(ValueError):
        auc(pos, neg)
