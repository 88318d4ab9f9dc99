"""Convolutional networks of experiment E3: LeNet-5 for MNIST and ResNet-20 for CIFAR-10.

Both keep PyTorch's default initialisation of every layer (what a fresh module draws from
the global RNG), so that a seed fixes the initial weights through ``torch.manual_seed``.
Images are ``[B, C, H, W]``; both networks return logits ``[B, 10]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from .errors import check_choice

N_CLASSES = 10


class LeNet5(nn.Module):
    """LeNet-5 for 1×28×28 images (LeCun et al. 1998, with ReLU and max-pooling).

    conv 6@5×5 (padding 2) → ReLU → max-pool 2 → conv 16@5×5 → ReLU → max-pool 2 →
    fc 120 → ReLU → fc 84 → ReLU → fc 10.  61,706 parameters.
    """

    def __init__(self, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # [B, 6, 14, 14]
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # [B, 16, 5, 5]
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with BatchNorm and an identity shortcut.

    When the block halves the resolution and widens the channels, the shortcut is He et
    al.'s option A: the input subsampled by 2 and zero-padded to the new channel count,
    which adds no parameters.
    """

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.stride = stride
        self.extra_channels = channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1 or self.extra_channels:
            half = self.extra_channels // 2
            shortcut = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, half, self.extra_channels - half))
        return F.relu(out + shortcut)


class ResNet20(nn.Module):
    """ResNet-20 for 3×32×32 images (He et al. 2016, the CIFAR-10 variant with n = 3).

    3×3 conv 16 → BatchNorm → ReLU → three stages of three :class:`BasicBlock` with 16,
    32 and 64 channels (the second and third start with stride 2) → global average
    pool → fc 10.  269,722 parameters.
    """

    def __init__(self, n_classes: int = N_CLASSES, blocks_per_stage: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers: list[nn.Module] = []
        in_channels = 16
        for stage, channels in enumerate((16, 32, 64)):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(in_channels, channels, stride))
                in_channels = channels
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(64, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        # A mean rather than nn.AdaptiveAvgPool2d, whose CUDA backward is nondeterministic.
        return self.fc(x.mean(dim=(2, 3)))


@dataclass(frozen=True)
class ModelInfo:
    """What a network needs: its constructor and the shape [C, H, W] of its input images."""

    build: Callable[[], nn.Module]
    input_shape: tuple[int, int, int]
    dataset: str


#: The networks :func:`build_model` knows.
MODELS: dict[str, ModelInfo] = {
    "lenet": ModelInfo(LeNet5, (1, 28, 28), "MNIST"),
    "resnet20": ModelInfo(ResNet20, (3, 32, 32), "CIFAR-10"),
}


def build_model(name: str) -> nn.Module:
    """A freshly initialised network (drawn from the global torch RNG).

    Parameters
    ----------
    name : {"lenet", "resnet20"}

    Raises
    ------
    ParameterError
        Unknown ``name``.
    """
    return MODELS[check_choice(name, "model", tuple(MODELS))].build()


def final_layer(model: nn.Module) -> nn.Linear:
    """The last :class:`torch.nn.Linear` of ``model`` (in registration order): its output layer."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer")
    return linears[-1]


__all__ = ["MODELS", "BasicBlock", "LeNet5", "ModelInfo", "ResNet20", "build_model", "final_layer"]
