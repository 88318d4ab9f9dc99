"""Loading and summarising what the E3 figures (Fig. 4 and its per-epoch appendix figure) draw from.

The inputs are, per network, the trajectory of every seed (role ``trajectories``; only
their metrics are read) and the distances file of the network (role ``distances``): for
each group (``window``, ``epoch``) the Wasserstein
distance between the spectra of every two segments, per seed, with mean and sd over
seeds, and the calibrated verdicts between the first and the last segment of each group
across seeds.  Either network may be absent; the figures then leave out its panels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import content_key
from ...data import cifar10
from ...errors import InvalidFileError, ParameterError
from ...figures._common import plt, read_json_result, read_runs, verdict_text
from ...stages import TRAJECTORY_INPUT_PREFIX, is_trajectory_input, pair_name
from ...store import Trajectory
from .settings import NETWORKS

LABELS = {"lenet": "LeNet on MNIST", "resnet20": "ResNet-20 on CIFAR-10"}
SYNTHETIC_LABEL = "SYNTHETIC DATA"
#: How the summary defines the late windows (also stated in the JSON).
LATE_WINDOWS = "the second half of the windows, indices count // 2 to count - 1"


@dataclass(frozen=True)
class E3Network:
    """Trajectories (metrics only) and distances of one E3 network.

    Attributes
    ----------
    name : str
        ``"lenet"`` or ``"resnet20"``.
    seeds : list of int
        Seeds, ascending.
    trajectories : dict of int to Trajectory
        Per seed; the observable blocks are not loaded.
    distances : dict
        The network's distances file.
    synthetic : bool
        Whether the network was trained on the synthetic CIFAR-10 stand-in.
    """

    name: str
    seeds: list[int]
    trajectories: dict[int, Trajectory]
    distances: dict[str, Any]
    synthetic: bool
    #: The distances file's name of each seed's run, in seed order.
    names: list[str]

    def label(self) -> str:
        """Panel title prefix; says SYNTHETIC DATA when the data is the stand-in."""
        return f"{LABELS[self.name]} ({SYNTHETIC_LABEL})" if self.synthetic else LABELS[self.name]

    def group(self, group: str) -> dict[str, Any]:
        try:
            return self.distances["groups"][group]
        except KeyError:
            raise ParameterError(f"distances_{self.name}: holds no group {group!r}") from None

    def per_seed(self, group: str) -> np.ndarray:
        """Distance matrices of ``group``, float [S, K, K] in seed order."""
        per_input = self.group(group)["per_input"]
        return np.array([per_input[name] for name in self.names], dtype=float)

    def steps(self, group: str) -> list[list[int]]:
        """``[first, last]`` step of every segment of ``group``."""
        return [[int(a), int(b)] for a, b in self.group(group)["steps"]]

    def first_vs_last(self, group: str) -> tuple[str, dict[str, Any] | None]:
        """Name and verdict (``None`` if none was computed) of the first vs the last segment of ``group``."""
        names = self.group(group)["names"]
        name = pair_name(names[0], names[-1])
        return name, self.distances.get("verdicts", {}).get(name)

    def first_vs_last_text(self, group: str) -> str:
        """The verdict of the first vs the last segment of ``group`` in a few words, with their steps."""
        _, verdict = self.first_vs_last(group)
        (a0, a1), (b0, b1) = self.steps(group)[0], self.steps(group)[-1]
        return f"{group}s at steps {a0}-{a1} vs {b0}-{b1}: {verdict_text(verdict)}"


def read_distances(path: str | Path) -> dict[str, Any]:
    """Read the JSON that ``equivdyn distances`` wrote and check its shape and key."""
    p = Path(path)
    result = read_json_result(p)
    fields = ("key", "spec", "groups")
    if not (
        isinstance(result, dict)
        and all(f in result for f in fields)
        and isinstance(result["spec"], dict)
        and result["spec"].get("stage") == "distances"
    ):
        raise InvalidFileError(p, f"not a distances file (the JSON object with {', '.join(fields)} that "
                                  "`equivdyn distances` writes)")
    if result["key"] != content_key(result["spec"]):
        raise InvalidFileError(p, f"holds key {result['key']!r}, which is not the key of the spec inside it")
    for group in ("window", "epoch"):
        if group not in result["groups"]:
            raise InvalidFileError(p, f"holds no {group!r} distances")
    return result


def load(inputs: Mapping[str, Sequence[Path]]) -> tuple[dict[str, E3Network], dict[str, str]]:
    """Read the inputs of roles ``trajectories`` and ``distances``; return the networks
    present (in :data:`NETWORKS` order) and the keys.  Each run's network and seed are the
    ones stored in its trajectory file; each distances file belongs to the network whose
    trajectories it names."""
    runs = read_runs(inputs, ("model", "seed"), observables=False)
    by_key = {traj.key: ident for ident, traj in runs.items()}
    distances: dict[str, dict[str, Any]] = {}
    names: dict[tuple[str, int], str] = {}  # (network, seed) -> name in its distances file
    for path in inputs.get("distances", []):
        result = read_distances(path)
        mine = {
            by_key[key]: name[len(TRAJECTORY_INPUT_PREFIX):]
            for name, key in result["spec"]["inputs"].items()
            if is_trajectory_input(name) and key in by_key
        }
        networks = {network for network, _ in mine}
        if len(networks) != 1:
            raise ParameterError(f"--input distances: {path} names the trajectories of {len(networks)} input networks, not 1")
        (network,) = networks
        if network in distances:
            raise ParameterError(f"--input distances: two files for network {network}")
        distances[network] = result
        names.update(mine)
    if not distances:
        raise ParameterError("--input distances: the figure needs the distances files")
    trained = {network for network, _ in runs}
    if trained != set(distances):
        raise ParameterError(
            f"--input: every network needs its distances file and its trajectories; trajectories of "
            f"{', '.join(sorted(trained))}, distances of {', '.join(sorted(distances))}"
        )
    keys = {f"traj_{names[i]}": t.key for i, t in runs.items() if i in names}
    keys.update({f"distances_{network}": result["key"] for network, result in distances.items()})
    networks = {}
    for network in NETWORKS:
        if network not in distances:
            continue
        seeds = sorted(s for n, s in runs if n == network)
        expected = {names.get((network, s)) for s in seeds}
        for group in distances[network]["groups"].values():
            if set(group["per_input"]) != expected:
                raise ParameterError(
                    f"distances of {network}: has distances of {sorted(group['per_input'])}, "
                    f"but the trajectories are {sorted(map(str, expected))}"
                )
        trajectories = {s: runs[network, s] for s in seeds}
        synthetic = any(t.params.get("inputs", {}).get("data") == cifar10.SYNTHETIC_KEY for t in trajectories.values())
        order = [names[network, s] for s in seeds]
        networks[network] = E3Network(network, seeds, trajectories, distances[network], synthetic, order)
    return networks, keys


def log10_off_diagonal(matrix: np.ndarray) -> np.ndarray:
    """log10 of a distance matrix with the diagonal (and any zero) as NaN, for a heat map."""
    m = np.array(matrix, dtype=float)
    with np.errstate(divide="ignore"):
        out = np.log10(np.where(m > 0, m, np.nan))
    np.fill_diagonal(out, np.nan)
    return out


def to_last(per_seed: np.ndarray) -> dict[str, list[float] | None]:
    """Distance of every segment to the last one over seeds: mean, sd (ddof 1), min, max.

    ``per_seed`` is float [S, K, K]; each list has K entries (the last is 0).  ``sd`` is
    ``None`` with a single seed.
    """
    col = np.asarray(per_seed, dtype=float)[:, :, -1]
    return {
        "mean": col.mean(axis=0).tolist(),
        "sd": col.std(axis=0, ddof=1).tolist() if col.shape[0] > 1 else None,
        "min": col.min(axis=0).tolist(),
        "max": col.max(axis=0).tolist(),
    }


def early_vs_late(mean: np.ndarray) -> dict[str, Any]:
    """Is the first window far from the last compared with how late windows change?

    ``mean`` is the [K, K] mean distance matrix.  The late windows are the second half
    (:data:`LATE_WINDOWS`); ``median_consecutive_late`` is the median distance between
    consecutive late windows, and ``early_distinct`` says whether the first window's
    distance to the last exceeds it.  With fewer than three windows there is no pair of
    consecutive late windows and both are ``None``.
    """
    m = np.asarray(mean, dtype=float)
    k = m.shape[0]
    late = list(range(k // 2, k))
    consecutive = [m[i, i + 1] for i in late[:-1]]
    first_to_last = float(m[0, k - 1])
    median = float(np.median(consecutive)) if consecutive else None
    return {
        "first_to_last": first_to_last,
        "median_consecutive_late": median,
        "ratio": first_to_last / median if median else None,
        "early_distinct": bool(first_to_last > median) if median is not None else None,
        "late_windows": late,
        "late_windows_are": LATE_WINDOWS,
    }


def heat_map(ax: plt.Axes, fig: plt.Figure, matrix: np.ndarray, labels: list[str], axis_label: str,
             title: str) -> None:
    """log10 distance matrix between segments, with up to six of their ``labels`` as ticks."""
    values = log10_off_diagonal(matrix)
    k = len(labels)
    if np.isfinite(values).any():
        image = ax.imshow(values, cmap="viridis", origin="upper", interpolation="nearest")
        fig.colorbar(image, ax=ax, label=r"$\log_{10}$ Wasserstein distance", shrink=0.85)
    else:
        ax.imshow(np.zeros((k, k)), cmap="Greys", vmin=0, vmax=1)
        ax.text(0, 0, "no pair of segments", ha="center", va="center")
    ticks = np.unique(np.linspace(0, k - 1, min(k, 6)).round().astype(int))
    ax.set_xticks(ticks, [labels[i] for i in ticks])
    ax.set_yticks(ticks, [labels[i] for i in ticks])
    ax.set(xlabel=axis_label, ylabel=axis_label, title=title)
