"""Files saved by keras_attn 0.1 (tests/fixtures/saved_0.1, written at commit 151e253) load into
today's code with the same outputs: `.keras` files through `keras.saving.load_model`, and
`.weights.h5` files into the same network built today."""

import importlib.util
import os

import keras
import numpy as np
import pytest

from keras_attn.applications import get_model, inception
from keras_attn.applications.application import build_application
from keras_attn.applications.specs import get_spec
from tests.conftest import FIXTURES

SAVED = os.path.join(FIXTURES, "saved_0.1")
_spec = importlib.util.spec_from_file_location("make_fixtures",
                                               os.path.join(SAVED, "make_fixtures.py"))
make_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_fixtures)
NAMES = [*make_fixtures.NETWORKS, "se_inception_v3"]


@pytest.fixture(scope="module")
def outputs():
    return np.load(os.path.join(SAVED, "outputs.npz"))


def _build(name):
    if name != "se_inception_v3":
        return get_model(name, **make_fixtures.NETWORKS[name])

    def body(x, spec, record):  # make_fixtures.se_inception's, as today's builder calls it
        x = inception._conv_bn(x, 16, 3, strides=2, padding="valid", name="stem1")
        branch = inception._conv_bn(x, 16, (1, 3), name="mixed0_1x3")
        pool = inception._average_pool_same(x, "mixed0_pool")
        x = inception._concatenate([branch, pool], "mixed0")
        return inception._gate(x, spec, "mixed0")

    return build_application(get_spec("se_inception_v3"), body, input_shape=(75, 75, 3),
                             classes=5)


@pytest.mark.parametrize("name", NAMES)
def test_keras_file_of_0_1_loads_with_equal_outputs(name, outputs):
    model = keras.saving.load_model(os.path.join(SAVED, f"{name}.keras"))
    actual = keras.ops.convert_to_numpy(model(outputs[f"{name}_images"], training=False))
    np.testing.assert_allclose(actual, outputs[f"{name}_outputs"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_weights_file_of_0_1_loads_into_todays_network(name, outputs):
    model = _build(name)
    model.load_weights(os.path.join(SAVED, f"{name}.weights.h5"))
    actual = keras.ops.convert_to_numpy(model(outputs[f"{name}_images"], training=False))
    np.testing.assert_allclose(actual, outputs[f"{name}_outputs"], rtol=0, atol=1e-6)
