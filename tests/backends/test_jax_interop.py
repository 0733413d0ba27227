"""`.keras` files between TensorFlow and JAX, and data-parallel training on JAX."""

import numpy as np
import pytest

from tests.backends import common


@pytest.mark.slow
def test_keras_files_move_between_tensorflow_and_jax(tmp_path):
    common.assert_keras_files_move("jax", tmp_path)


@pytest.mark.slow
def test_jax_data_parallel_step_equals_one_device_step(tmp_path):
    common.run_worker("data_parallel", tmp_path, "jax",
                      XLA_FLAGS="--xla_force_host_platform_device_count=2")
    result = np.load(tmp_path / "data_parallel.npz")
    assert int(result["devices"]) == 2
    assert str(result["sharding"]) == "('batch', None, None, None)"
    count = sum(1 for key in result.files if key.startswith("single_"))
    changed = 0
    for index in range(count):
        parallel, single = result[f"parallel_{index}"], result[f"single_{index}"]
        np.testing.assert_allclose(parallel, single, rtol=0, atol=1e-5, err_msg=f"weight {index}")
        changed += not np.array_equal(single, result[f"initial_{index}"])
    assert changed > count // 2  # the step moved the weights it compares
