"""What the backend's kernels run well on this machine: the facts the layers' fast paths key on.

Each answer is fixed for the process (TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is
imported), so they are computed once.
"""

import functools

import keras


@functools.cache
def tensorflow_onednn_enabled():
    """Whether TensorFlow runs its oneDNN CPU kernels in this process, grouped convolutions
    (and their gradients) included. Fixed when TensorFlow is imported, by
    `TF_ENABLE_ONEDNN_OPTS` or, unset, by the CPU."""
    if keras.backend.backend() != "tensorflow":
        return False
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # a TensorFlow that moved it: assume the portable kernels.
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


@functools.cache
def cpu_has_avx512():
    """Whether this CPU has AVX-512 (NumPy's run-time CPU detection)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        try:  # NumPy 1.x
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return False
    return bool(__cpu_features__.get("AVX512F"))


def tensorflow_onednn_on_avx512():
    """Whether TensorFlow runs its oneDNN kernels on an AVX-512 CPU: where the layers' inference
    fast paths were measured to pay (BatchNorm folded into the convolution before it, 1x1
    convolutions on small maps as matrix products)."""
    return tensorflow_onednn_enabled() and cpu_has_avx512()
