"""FusedBatchNormalization computes keras.layers.BatchNormalization: outputs, gradients and
moving statistics, in inference and training. It trains with TensorFlow's fused op; in
inference it is BatchNormalization (keras_attn.optimize_for_inference folds it away)."""

import keras
import numpy as np
import pytest

from keras_attn import testing
from keras_attn.layers import FusedBatchNormalization, common, pytorch

SHAPE = (4, 5, 6, 8)


def _pair(center, scale):
    kwargs = dict(epsilon=1e-5, momentum=0.9, center=center, scale=scale)
    reference, layer = keras.layers.BatchNormalization(**kwargs), FusedBatchNormalization(**kwargs)
    reference.build(SHAPE)
    layer.build(SHAPE)
    rng = np.random.default_rng(1)
    weights = [rng.uniform(0.5, 2.0, w.shape).astype("float32") for w in reference.weights]
    reference.set_weights(weights)
    layer.set_weights(weights)
    return reference, layer


def _outputs_and_gradients(layer, x, training):
    """Outputs, d(sum(y * r))/d(inputs, trainable weights), and the updated moving statistics."""
    cotangent = keras.ops.convert_to_tensor(testing.random_images(SHAPE, seed=7))
    moving = [v.value for v in layer.non_trainable_variables]

    def loss(inputs, *trainable):
        y, _ = layer.stateless_call(list(trainable), moving, inputs, training=training)
        return keras.ops.sum(y * cotangent)

    outputs, updated = layer.stateless_call(
        [v.value for v in layer.trainable_variables], moving, x, training=training)
    grads = testing.gradients(loss, x, *layer.trainable_variables)
    return ([keras.ops.convert_to_numpy(outputs)] + list(grads)
            + [keras.ops.convert_to_numpy(v) for v in updated])


@pytest.mark.backends
@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False)])
def test_equals_batch_normalization_with_gradients_and_statistics(center, scale, training):
    reference, layer = _pair(center, scale)
    x = keras.ops.convert_to_tensor(testing.random_images(SHAPE) * 3.0 + 2.0)
    ours, theirs = (_outputs_and_gradients(r, x, training) for r in (layer, reference))
    assert len(ours) == len(theirs) == 2 + int(center) + int(scale) + 2
    for index, (a, b) in enumerate(zip(ours, theirs)):
        scale_of = max(1.0, np.abs(b).max())
        np.testing.assert_allclose(a / scale_of, b / scale_of, rtol=0, atol=1e-5,
                                   err_msg=f"value {index}")
    if training:  # the moving statistics moved, by the biased batch variance as Keras does
        assert np.abs(ours[-1] - layer.get_weights()[-1]).max() > 1e-3


@pytest.mark.backends
def test_networks_use_it_and_config_round_trips():
    bn = common.batch_norm("bn1")
    assert isinstance(bn, FusedBatchNormalization)
    assert (bn.epsilon, bn.momentum) == (pytorch.BN_EPSILON, pytorch.BN_MOMENTUM)
    x = testing.random_images(SHAPE)
    bn(x)
    testing.assert_config_round_trip(bn, x)


def _op_types(layer, x, training):
    """The type of every op in the graph of `layer(x, training=training)`, traced."""
    import tensorflow as tf

    function = tf.function(lambda inputs: layer(inputs, training=training))
    return [op.type for op in function.get_concrete_function(x).graph.get_operations()]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's fused op")
def test_tensorflow_trains_with_the_fused_op_and_infers_as_batch_normalization():
    reference, layer = _pair(center=True, scale=True)
    x = keras.ops.convert_to_tensor(testing.random_images(SHAPE) * 3.0 + 2.0)
    assert "FusedBatchNormV3" in _op_types(layer, x, True)
    inference = _op_types(layer, x, False)
    assert "FusedBatchNormV3" not in inference and "Rsqrt" in inference, inference
    # A frozen layer in training normalizes with its moving statistics, as BatchNormalization.
    frozen_reference, frozen = _pair(center=True, scale=True)
    frozen_reference.trainable = frozen.trainable = False
    assert "FusedBatchNormV3" not in _op_types(frozen, x, True)
    for a, b in zip(_outputs_and_gradients(frozen, x, True),
                    _outputs_and_gradients(frozen_reference, x, True)):
        scale_of = max(1.0, np.abs(b).max())
        np.testing.assert_allclose(a / scale_of, b / scale_of, rtol=0, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's fused op")
def test_tensorflow_channels_first_takes_batch_normalizations_path():
    import tensorflow as tf

    x = tf.constant(testing.random_images(SHAPE))
    channels_first = FusedBatchNormalization(axis=1, epsilon=1e-5)
    reference = keras.layers.BatchNormalization(axis=1, epsilon=1e-5)
    y = tf.transpose(x, (0, 3, 1, 2))
    np.testing.assert_allclose(channels_first(y, training=True), reference(y, training=True),
                               rtol=0, atol=1e-5)
    assert "FusedBatchNormV3" not in _op_types(channels_first, y, True)


@pytest.mark.backends
def test_every_nth_pixel_is_a_strided_slice():
    x = testing.random_images((2, 9, 8, 3))
    for step in (2, 3):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(pytorch.every_nth_pixel(x, step)), x[:, ::step, ::step])
