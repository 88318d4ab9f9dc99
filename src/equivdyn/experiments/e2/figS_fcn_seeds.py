"""Appendix figure: between-seed spectra of the widest network and their distances.

(a) The Koopman spectra of every seed at the reference width, overlaid: conjugate
dynamics from different seeds should give nearby spectra.  (b) Histogram of the
between-seed distances against the per-seed distances between the narrowest and the
reference width.  (c) A table of those distances and the calibrated verdict of that width
pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from ...figures._common import (
    VERDICT_NOTE,
    mean_sd_text,
    new_figure,
    numbers_table,
    pairs_of,
    plt,
    save,
    spectra_near_one,
    table_height,
    verdict_text,
    verdicts_of,
)
from .results import load


def plot(inputs: Mapping[str, Sequence[Path]], prefix: Path) -> None:
    res = load(inputs)
    h = res.reference_width
    narrow = res.widths[0]
    between = res.between_seeds()
    across = res.distances(narrow, h)
    verdicts = verdicts_of(res.comparison, [f"{narrow}|{h}"])
    text = verdict_text(verdicts[f"{narrow}|{h}"])

    header = ("distances", "Wasserstein distance,\nmean ± sd", "pairs", "calibrated verdict\n(widths as setups)")
    rows = [
        [f"between seeds, h = {h}", mean_sd_text(between), str(len(between)), "-"],
        [f"h = {narrow} vs {h}, per seed", mean_sd_text(across), str(len(across)), verdict_text(verdicts[f"{narrow}|{h}"], prefix=False)],
    ]
    heights = (4.4, table_height(header, rows))
    fig = new_figure(sum(heights) + 0.5)
    grid = fig.add_gridspec(2, 2, height_ratios=heights)
    ax, bx = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    cmap = plt.get_cmap("tab20")
    spectra_near_one(
        ax,
        [(f"seed {s}" if i < 10 else None, res.spectra[h, s].eigenvalues, {"color": cmap(i % 20), "s": 16})
         for i, s in enumerate(res.seeds)],
        rf"(a) Koopman spectra of h = {h} near $\lambda$ = 1, every seed",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)

    bins = np.histogram_bin_edges(np.concatenate([between, across]), bins=15)
    bx.hist(between, bins=bins, alpha=0.6, color="k",
            label=f"between seeds, h = {h} ({len(between)} pair{'s' if len(between) != 1 else ''})")
    bx.hist(across, bins=bins, alpha=0.6, color="tab:purple", label=f"h = {narrow} vs {h}, per seed")
    bx.set(xlabel="Wasserstein distance", ylabel="count", title="(b) between-seed vs between-width distances")
    bx.xaxis.set_major_locator(MaxNLocator(5))  # distances' tick labels are long
    bx.legend()
    numbers_table(fig.add_subplot(grid[1, :]), header, rows, title="(c) distances and the calibrated verdict")
    title = f"E2 appendix: between-seed spectra at h = {h} ({len(res.seeds)} seeds); h = {narrow} vs {h}: {text}"
    fig.suptitle(title)

    numbers = {
        "reference_width": h,
        "seeds": res.seeds,
        "spectra": {f"s{s}": pairs_of(res.spectra[h, s].eigenvalues) for s in res.seeds},
        "between_seeds": {str(h): between},
        "between_seed_pairs": [[s, t] for i, s in enumerate(res.seeds) for t in res.seeds[i + 1:]],
        "distances": {f"{narrow}|{h}": across},
        "summary": {"between_mean": float(np.mean(between)), f"{narrow}|{h}_mean": float(np.mean(across))},
        "verdicts": verdicts,
        "verdict_text": {k: verdict_text(v) for k, v in verdicts.items()},
        "verdicts_are": VERDICT_NOTE,
        "title": title,
        "keys": res.keys,
    }
    save(fig, numbers, prefix)
