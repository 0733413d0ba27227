"""Every network at full size has exactly timm's parameters (or, without timm, the paper's)."""

import functools
import json
import os
import re

import keras
import numpy as np
import pytest

from keras_attn.applications import get_model, list_models

from tests import param_counts
from tests.conftest import FIXTURES

with open(os.path.join(FIXTURES, "timm_models.json")) as file:
    TIMM = json.load(file)

# Networks that timm does not have: the paper's figure, to its printed precision.
PAPER_ONLY = {"sknet101", "resnext29_8x64d", "resnext29_16x64d", "seresnet20_cifar"}
# SE-Inception's reference is keras.applications with the gates off (test_inception.py).
SE_INCEPTION = {"se_inception_v3", "se_inception_resnet_v2", "se_bn_inception"}


def test_every_name_has_a_reference():
    assert set(list_models()) - set(TIMM) == PAPER_ONLY | SE_INCEPTION


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(list_models()) - PAPER_ONLY - SE_INCEPTION))
def test_count_params_equals_timm(name, full_size_param_counts):
    assert full_size_param_counts[name] == TIMM[name]["keras_count_params"]


@pytest.mark.slow
def test_sknet101_has_the_papers_48_9m_parameters(full_size_param_counts):
    # SKNet paper, Table 2: SKNet-101, 48.9M.
    assert round(full_size_param_counts["sknet101"] / 1e6, 1) == 48.9


@pytest.mark.slow
@pytest.mark.parametrize("name, millions", [("resnext29_8x64d", 34.4), ("resnext29_16x64d", 68.1)])
def test_resnext29_has_the_papers_parameters(name, millions):
    # ResNeXt paper, Table 7 (CIFAR-10): ResNeXt-29 8x64d 34.4M, 16x64d 68.1M. The paper counts
    # the weights of the convolutions and the classifier, not BatchNorm's.
    assert round(_conv_and_classifier_weights(get_model(name, classes=10)) / 1e6, 1) == millions


@pytest.mark.slow
@pytest.mark.parametrize("name, millions", [("cbamresnet18", 11.78), ("cbamresnet50", 28.09)])
def test_cbam_resnets_have_the_papers_parameters(name, millions, full_size_param_counts):
    # CBAM paper, Table 4 (ImageNet-1K): ResNet-18 + CBAM 11.78M, ResNet-50 + CBAM 28.09M. The
    # paper counts trainable parameters, and its channel MLP has biases (the authors' code uses
    # nn.Linear); timm's CbamModule, and so the row, has none: the paper's network is the row
    # with gate_args={"mlp_bias": True}.
    def mlp_bias(weight):
        return re.search(r"_cbam/channel_fc[12]/bias$", weight.path) is not None

    with_bias = functools.partial(param_counts.count_parameters, name,
                                  gate_args={"mlp_bias": True})
    # Without the biases it is the row; the paper counts the trainable parameters.
    assert with_bias(counted=lambda w: not mlp_bias(w)) == full_size_param_counts[name]
    assert round(with_bias(counted=lambda w: w.trainable) / 1e6, 2) == millions
    # timm's network, without the biases, is 0.02M short of the paper's ResNet-50 figure.
    assert round(TIMM[name]["timm_params"] / 1e6, 2) == {"cbamresnet18": 11.78,
                                                         "cbamresnet50": 28.07}[name]


def test_seresnet20_cifar_is_the_papers_resnet20_plus_se():
    # ResNet paper, Table 6 (CIFAR-10): ResNet-20, 0.27M (convolutions and classifier; the
    # two projection shortcuts add 2,560). SE adds 5,784 with 10 classes.
    plain = get_model("seresnet20_cifar", classes=10, gate=None)
    assert _conv_and_classifier_weights(plain) == 270_906
    assert get_model("seresnet20_cifar", classes=10).count_params() == plain.count_params() + 5_784


def _conv_and_classifier_weights(model):
    return sum(
        int(np.prod(w.shape))
        for layer in model.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
        for w in layer.weights
    )
