"""GroupedConv2D on both of TensorFlow's CPU kernel sets: oneDNN's and the portable ones.

Which set a process runs is fixed when TensorFlow is imported (`TF_ENABLE_ONEDNN_OPTS`), and
"native" and "auto" compute differently on each: TensorFlow's grouped `Conv2D` under oneDNN,
Keras' XLA-compiled one and the packed dense form without it. The test session runs one set;
this runs the grouped-convolution tests and the timm fixtures under the other.
"""

import re

import keras
import pytest

from keras_attn.layers import grouped_conv
from tests.backends import common

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="TensorFlow's CPU kernels; other backends: tests/backends")


@pytest.mark.slow
def test_grouped_conv_and_timm_fixtures_pass_on_the_other_kernel_set():
    other = "0" if grouped_conv.tensorflow_onednn_enabled() else "1"
    probe = ("import keras_attn.layers.grouped_conv as g; "
             "print('onednn', g.tensorflow_onednn_enabled(), g.resolve_implementation('auto'))")
    expected = "onednn True native" if other == "1" else "onednn False split"
    assert expected in common.run(["-c", probe], "tensorflow", 300, TF_ENABLE_ONEDNN_OPTS=other)
    output = common.run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                         "tests/layers/test_grouped_conv.py",
                         "tests/convert/test_timm.py::test_logits_equal_timm"],
                        "tensorflow", 1500, TF_ENABLE_ONEDNN_OPTS=other)
    summary = output.strip().splitlines()[-1]
    assert re.fullmatch(r"=* ?\d+ passed(, \d+ warnings?)? in [\d.]+s.*", summary), summary
