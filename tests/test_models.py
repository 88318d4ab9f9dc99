"""Tests of the E3 networks (equivdyn.models): shapes, sizes and output layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from equivdyn.errors import ParameterError
from equivdyn.models import MODELS, LeNet5, ResNet20, build_model, final_layer


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shapes(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name)
    x = torch.randn(3, *MODELS[name].input_shape)
    assert model(x).shape == (3, 10)
    model.eval()
    assert model(x[:1]).shape == (1, 10)


def test_parameter_counts() -> None:
    assert n_parameters(LeNet5()) == 61_706
    count = n_parameters(ResNet20())
    assert 260_000 <= count <= 280_000
    assert count == 269_722  # option-A shortcuts add no parameters
    resnet = ResNet20()
    assert sum(isinstance(m, nn.BatchNorm2d) for m in resnet.modules()) == 19
    assert sum(isinstance(m, nn.Conv2d) for m in resnet.modules()) == 19  # + fc = 20 weighted layers


def test_final_layer_is_the_last_linear() -> None:
    lenet, resnet = LeNet5(), ResNet20()
    assert final_layer(lenet) is lenet.fc3 and final_layer(resnet) is resnet.fc
    for layer in (final_layer(lenet), final_layer(resnet)):
        assert isinstance(layer, nn.Linear) and layer.out_features == 10
    assert final_layer(lenet).in_features == 84 and final_layer(resnet).in_features == 64
    with pytest.raises(ValueError, match="no nn.Linear"):
        final_layer(nn.Sequential(nn.ReLU()))


def test_build_model_is_seeded_by_the_global_rng_and_names_bad_models() -> None:
    torch.manual_seed(5)
    a = build_model("lenet")
    torch.manual_seed(5)
    b = build_model("lenet")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ParameterError, match="model"):
        build_model("vgg")


def test_resnet_shortcut_pads_channels_with_zeros() -> None:
    block = ResNet20().blocks[3]  # first block of the 32-channel stage
    assert block.stride == 2 and block.extra_channels == 16
    with torch.no_grad():
        for p in (block.conv2.weight, block.bn2.weight, block.bn2.bias):
            p.zero_()  # the residual branch gives 0: the output is relu(shortcut)
    block.eval()
    x = torch.rand(2, 16, 8, 8)
    out = block(x)
    assert out.shape == (2, 32, 4, 4)
    torch.testing.assert_close(out[:, 8:24], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, :8]) == 0 and torch.count_nonzero(out[:, 24:]) == 0
