"""E3's parameters and every default, one home for the trainer and the plan (torch-free)."""

from __future__ import annotations

from typing import Any

from ...errors import check_choice

#: The networks, in the order their jobs are planned and their panels drawn.
NETWORKS = ("lenet", "resnet20")
DTYPES = ("float32", "float64")
OBSERVABLES = ("final_layer",)

#: Defaults of every parameter (LeNet-5's); ``params`` given to :func:`simulate` may override
#: any.  ``train_subset``/``test_subset`` of ``None`` use the whole set.
DEFAULTS: dict[str, Any] = {
    "model": "lenet",
    "seed": 0,
    "n_inits": 5,
    "perturbation": 0.001,
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "batch_size": 60,
    "n_epochs": 3,
    "train_subset": None,
    "test_subset": None,
    "augment": False,
    "dtype": "float32",
    "observable": "final_layer",
}

#: Where a network's defaults differ from :data:`DEFAULTS` (standard ResNet-20 CIFAR-10 settings).
NETWORK_DEFAULTS: dict[str, dict[str, Any]] = {
    "lenet": {},
    "resnet20": {"n_inits": 3, "lr": 0.1, "weight_decay": 0.0001, "batch_size": 128, "n_epochs": 2, "augment": True},
}


def defaults_for(model: str) -> dict[str, Any]:
    """Every parameter's default for ``model`` (:data:`DEFAULTS` with :data:`NETWORK_DEFAULTS`)."""
    model = check_choice(model, "model", NETWORKS)
    return {**DEFAULTS, **NETWORK_DEFAULTS.get(model, {}), "model": model}


#: Windows of early steps of each network: ``count`` windows of ``length`` steps from the first.
WINDOW_DEFAULTS: dict[str, dict[str, int]] = {
    "lenet": {"length": 50, "count": 20},
    "resnet20": {"length": 40, "count": 10},
}
