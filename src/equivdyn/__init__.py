"""equivdyn: decide whether two training runs have equivalent (conjugate) dynamics.

Training runs are recorded as weight trajectories (``[M, T, D]`` arrays: initialisations,
snapshots, observables) in self-describing HDF5 files; Koopman operators are fitted to
them by dynamic mode decomposition; and Koopman eigenvalue sets are compared by a
Wasserstein distance.  :func:`compare_runs` gives the calibrated verdict (is setup a's
dynamics conjugate to setup b's?) as a :class:`Verdict`; its error rates are measured on
the known-answer suite of :mod:`equivdyn.calibration`.  :class:`Recorder` (with
:func:`perturbed_copies`) records your own PyTorch training runs into trajectory files.

Importing this package never imports torch: only training does.
"""

from ._io import canonical_json, content_key
from .conjugacy import (
    PermutationResult,
    RandomizationResult,
    bootstrap_ci,
    distance_matrix,
    optimal_matching,
    permutation_test,
    randomization_test,
    wasserstein,
)
from .errors import EquivdynError, InvalidFileError, ParameterError
from .koopman import KoopmanEstimator, KoopmanSpectrum, delay_embed, dmd, pca_project, snapshot_pairs
from .recorder import Recorder, perturbed_copies
from .verdict import Verdict, compare_runs
from .store import (
    SpectrumFile,
    Trajectory,
    read_spectra,
    read_trajectory,
    summarize,
    write_spectra,
    write_trajectory,
)

__version__ = "0.1.0"

__all__ = [
    "EquivdynError",
    "InvalidFileError",
    "KoopmanEstimator",
    "KoopmanSpectrum",
    "ParameterError",
    "PermutationResult",
    "RandomizationResult",
    "Recorder",
    "SpectrumFile",
    "Trajectory",
    "Verdict",
    "bootstrap_ci",
    "canonical_json",
    "compare_runs",
    "content_key",
    "delay_embed",
    "distance_matrix",
    "dmd",
    "optimal_matching",
    "perturbed_copies",
    "pca_project",
    "permutation_test",
    "randomization_test",
    "read_spectra",
    "read_trajectory",
    "snapshot_pairs",
    "summarize",
    "wasserstein",
    "write_spectra",
    "write_trajectory",
]
