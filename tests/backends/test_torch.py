"""The layers and networks under KERAS_BACKEND=torch."""

import pytest

from tests.backends import common


@pytest.mark.slow
def test_backend_independent_tests_pass_on_torch():
    common.assert_backend_independent_tests_pass("torch")


@pytest.mark.slow
def test_keras_files_move_between_tensorflow_and_torch(tmp_path):
    common.assert_keras_files_move("torch", tmp_path)
