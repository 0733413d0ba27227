"""FusedBatchNormalization computes keras.layers.BatchNormalization: outputs, gradients and
moving statistics, in inference and training. It trains with TensorFlow's fused op, and traced
inference folds it into the convolution before it."""

import keras
import numpy as np
import pytest

from keras_attn import testing
from keras_attn.layers import (
    FusedBatchNormalization,
    GroupedConv2D,
    batch_norm,
    common,
    kernels,
)
from tests.layers.test_layers import CASES as ATTENTION_CASES
from tests.layers.test_layers import _layer as attention_layer

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
    assert (bn.epsilon, bn.momentum) == (common.BN_EPSILON, common.BN_MOMENTUM)
    x = testing.random_images(SHAPE)
    bn(x)
    testing.assert_config_round_trip(bn, x)


def _op_types(layer, x, training):
    """The type of every op in the graph of `layer(x, training=training)`, traced."""
    import tensorflow as tf

    function = tf.function(lambda inputs: layer(inputs, training=training))
    return [op.type for op in function.get_concrete_function(x).graph.get_operations()]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's fused op")
@pytest.mark.parametrize("fused_inference", [True, False], ids=["fused", "keras_ops"])
def test_tensorflow_inference_fused_where_chosen_and_equal_either_way(monkeypatch,
                                                                       fused_inference):
    monkeypatch.setattr(batch_norm, "fused_inference", lambda: fused_inference)
    reference, layer = _pair(center=True, scale=True)
    x = keras.ops.convert_to_tensor(testing.random_images(SHAPE) * 3.0 + 2.0)
    # Training always runs the fused op; inference only where fused_inference() says.
    assert "FusedBatchNormV3" in _op_types(layer, x, True)
    inference = _op_types(layer, x, False)
    assert ("FusedBatchNormV3" in inference) == fused_inference, inference
    assert ("Rsqrt" in inference) != fused_inference, inference
    # Inference, and a frozen layer in training (moving statistics, as BatchNormalization).
    frozen_reference, frozen = _pair(center=True, scale=True)
    frozen_reference.trainable = frozen.trainable = False
    for ours, theirs in ((layer, reference), (frozen, frozen_reference)):
        training = not ours.trainable
        for a, b in zip(_outputs_and_gradients(ours, x, training),
                        _outputs_and_gradients(theirs, x, training)):
            scale_of = max(1.0, np.abs(b).max())
            np.testing.assert_allclose(a / scale_of, b / scale_of, rtol=0, atol=1e-5)
    assert ("FusedBatchNormV3" in _op_types(frozen, x, True)) == fused_inference


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
            keras.ops.convert_to_numpy(common.every_nth_pixel(x, step)), x[:, ::step, ::step])


def _residual_tails(conv, input_shape, seed=3):
    """`relu(batch_norm(conv(images)) + shortcut)`, the tail of a residual block, once with
    `keras.layers.BatchNormalization` and once with `FusedBatchNormalization`, same weights."""
    images = keras.Input(input_shape[1:], batch_size=input_shape[0])
    convolved = conv(images)
    shortcut = keras.Input(convolved.shape[1:], batch_size=input_shape[0])
    models = []
    for layer_class in (keras.layers.BatchNormalization, FusedBatchNormalization):
        normalized = layer_class(epsilon=1e-5, momentum=0.9)(convolved)
        outputs = keras.layers.ReLU()(keras.layers.Add()([normalized, shortcut]))
        models.append(keras.Model([images, shortcut], outputs))
    testing.perturb_batch_norm_statistics(models[0], seed)
    testing.perturb_batch_norm_statistics(models[1], seed)
    inputs = [testing.random_images(input_shape, seed=seed),
              testing.random_images(tuple(convolved.shape), seed=seed + 1)]
    return models, inputs


def _traced_outputs_and_gradients(model, inputs):
    """Traced outputs and d(sum(outputs^2))/d(images, trainable weights), BatchNorms frozen as
    in fine-tuning (`training=False`); and the op types of the traced graph."""
    import tensorflow as tf

    @tf.function
    def outputs_and_gradients(images, shortcut):
        with tf.GradientTape() as tape:
            tape.watch(images)
            outputs = model([images, shortcut], training=False)
            loss = tf.reduce_sum(tf.square(outputs))
        return [outputs] + tape.gradient(loss, [images] + model.trainable_variables)

    values = [v.numpy() for v in outputs_and_gradients(*inputs)]
    graph = outputs_and_gradients.get_concrete_function(*inputs).graph
    return values, [op.type for op in graph.get_operations()]


FOLDABLE_CONVOLUTIONS = {
    "1x1": (lambda: keras.layers.Conv2D(16, 1, use_bias=False), (4, 12, 12, 8)),
    # A kernel of 64 elements, half its output's 128: the largest that folds.
    "1x1_kernel_half_its_output": (lambda: keras.layers.Conv2D(8, 1, use_bias=False),
                                   (1, 4, 4, 8)),
    "3x3_strided_valid": (lambda: keras.layers.Conv2D(16, 3, strides=2, use_bias=False),
                          (4, 16, 16, 8)),
    "grouped": (lambda: GroupedConv2D(16, 3, groups=4, padding="same", use_bias=False),
                (4, 12, 12, 8)),
    # Selective Kernel's second branch. (Keras' own dilated Conv2D runs between
    # SpaceToBatchND and BatchToSpaceND, and does not fold.)
    "grouped_dilated": (lambda: GroupedConv2D(16, 3, groups=4, dilation_rate=2, padding="same",
                                              use_bias=False), (4, 12, 12, 8)),
}


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's traced graph")
@pytest.mark.parametrize("convolution", [
    pytest.param(name, marks=pytest.mark.skipif(
        name.startswith("grouped") and not kernels.tensorflow_onednn_enabled(),
        reason="TensorFlow runs a grouped Conv2D op only with oneDNN"))
    for name in FOLDABLE_CONVOLUTIONS
])
def test_traced_inference_folds_into_the_convolution_before_it(convolution, monkeypatch):
    """The fold computes BatchNormalization's function, gradients included, with a BiasAdd
    after the convolution instead of the BatchNorm."""
    monkeypatch.setattr(batch_norm, "fused_inference", lambda: True)
    make_convolution, input_shape = FOLDABLE_CONVOLUTIONS[convolution]
    (reference, ours), inputs = _residual_tails(make_convolution(), input_shape)
    theirs, _ = _traced_outputs_and_gradients(reference, inputs)
    folded, op_types = _traced_outputs_and_gradients(ours, inputs)
    assert "FusedBatchNormV3" not in op_types and "BiasAdd" in op_types, op_types
    assert len(folded) == len(theirs) == 2 + 3  # outputs, images; kernel, gamma, beta
    for index, (a, b) in enumerate(zip(folded, theirs)):
        scale_of = max(1.0, np.abs(b).max())
        np.testing.assert_allclose(a / scale_of, b / scale_of, rtol=0, atol=1e-5,
                                   err_msg=f"value {index}")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's traced graph")
@pytest.mark.parametrize(
    "convolution, input_shape",
    [
        # A kernel of 96 elements, 0.75 of its output's 128: rescaling it would cost more
        # than the fold saves.
        (lambda: keras.layers.Conv2D(8, 1, use_bias=False), (1, 4, 4, 12)),
        # The BatchNorm's input is the bias's output, not the convolution's.
        (lambda: keras.layers.Conv2D(16, 1, use_bias=True), (4, 12, 12, 8)),
    ],
    ids=["kernel_over_half_its_output", "convolution_with_bias"],
)
def test_traced_inference_keeps_the_batch_norm_where_it_does_not_fold(convolution, input_shape,
                                                                       monkeypatch):
    monkeypatch.setattr(batch_norm, "fused_inference", lambda: True)
    (reference, ours), inputs = _residual_tails(convolution(), input_shape)
    assert "FusedBatchNormV3" in _op_types(ours, inputs, False)
    np.testing.assert_allclose(ours(inputs, training=False), reference(inputs, training=False),
                               rtol=0, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's traced graph")
@pytest.mark.parametrize("case", [case for case in ATTENTION_CASES if not case.startswith("se")])
def test_traced_inference_folds_the_branch_batch_norms_into_their_convolutions(case, monkeypatch):
    """Where oneDNN runs the folded form: the same outputs, and only the attention's BatchNorm
    (after a matrix product, not a convolution) left in the graph; training folds none."""
    import tensorflow as tf

    layer, channels = attention_layer(case)
    # Every branch's kernel under half its output (7 x 7 x 8 x 16 elements against
    # 4 x 17 x 17 x 16 for sk_three_5x5_7x7's widest), so that every branch folds.
    inputs = keras.random.normal((4, 33, 33, channels), seed=1)
    layer(inputs)
    testing.perturb_batch_norm_statistics(layer)
    monkeypatch.setattr(batch_norm, "fused_inference", lambda: False)
    expected = keras.ops.convert_to_numpy(layer(inputs, training=False))
    monkeypatch.setattr(batch_norm, "fused_inference", lambda: True)
    batch_norms = [sublayer for sublayer in layer._flatten_layers()
                   if isinstance(sublayer, batch_norm.FusedBatchNormalization)]
    for training, unfolded in ((False, 1), (True, len(batch_norms))):
        op_types = _op_types(layer, inputs, training)
        assert op_types.count("FusedBatchNormV3") == unfolded, (training, op_types)
    folded = tf.function(lambda x: layer(x, training=False))(inputs)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(folded), expected, rtol=0, atol=1e-5)
