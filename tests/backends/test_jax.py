"""The backend-independent tests (layers and networks) rerun under KERAS_BACKEND=jax.

The rerun is the suite's longest test; the other JAX tests live in test_jax_interop.py so that
pytest-xdist (`--dist loadfile`) can run them on the other worker meanwhile.
"""

import pytest

from tests.backends import common


@pytest.mark.slow
def test_backend_independent_tests_pass_on_jax():
    common.assert_backend_independent_tests_pass("jax")
