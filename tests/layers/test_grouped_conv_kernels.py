"""GroupedConv2D with and without TensorFlow's oneDNN CPU kernels.

Which kernels a process runs is fixed when TensorFlow is imported (`TF_ENABLE_ONEDNN_OPTS`),
and "auto" chooses differently under each: TensorFlow's grouped `Conv2D` where it has a
gradient (oneDNN), the packed dense form where it has none (the portable kernels). The test
session runs one set; this runs the grouped-convolution tests, the timm fixtures and a training
step under the other.
"""

import re

import keras
import pytest

from keras_attn.layers import grouped_conv_choice
from tests.backends import common

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="TensorFlow's CPU kernels; other backends: tests/backends")


@pytest.mark.slow
def test_grouped_conv_and_timm_fixtures_pass_on_the_other_kernel_set():
    other = "0" if grouped_conv_choice().implementation == "native" else "1"
    probe = "import keras_attn.layers as l; print('choice', l.grouped_conv_choice())"
    expected = "choice native" if other == "1" else "choice split"
    assert expected in common.run(["-c", probe], "tensorflow", 300, TF_ENABLE_ONEDNN_OPTS=other)
    output = common.run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                         "tests/layers/test_grouped_conv.py",
                         "tests/convert/test_timm.py::test_logits_equal_timm",
                         "tests/applications/test_networks.py::"
                         "test_family_trains_saves_and_takes_any_input_size[resnext50_32x4d]"],
                        "tensorflow", 1500, TF_ENABLE_ONEDNN_OPTS=other)
    summary = output.strip().splitlines()[-1]
    assert re.fullmatch(r"=* ?\d+ passed(, \d+ warnings?)? in [\d.]+s.*", summary), summary
