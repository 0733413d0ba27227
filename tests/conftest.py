import os

# Keep TensorFlow's start-up chatter out of test logs; must be set before it is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    """Initial weights (and with them every numerical outcome) are the same on every run."""
    keras.utils.set_random_seed(0)


@pytest.fixture(autouse=True)
def _restore_global_keras_state():
    """Tests may change the dtype policy or image data format; put them back afterwards."""
    policy = keras.config.dtype_policy()
    data_format = keras.config.image_data_format()
    yield
    keras.config.set_dtype_policy(policy)
    keras.config.set_image_data_format(data_format)


FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="session")
def full_size_param_counts():
    """`count_params()` of every registry network at full size, 1000 classes: built once."""
    from keras_attn.applications import list_models, registry

    return {name: registry.count_parameters(name) for name in list_models()}
