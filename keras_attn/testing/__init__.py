"""Reusable checks for keras_attn layers and networks (and for networks built on them).

Each check asserts behaviour: outputs equal after a round trip, every trainable weight moved
by a training step, output shapes equal to what `compute_output_shape` promised.
"""

import os

import keras
import numpy as np

__all__ = [
    "assert_config_round_trip", "assert_convolution_equals", "assert_fit_changes_every_weight",
    "assert_keras_file_round_trip", "build_with_reference_weights", "gradients",
    "perturb_batch_norm_statistics", "random_images",
]


def random_images(shape, seed=0):
    """Reproducible float32 inputs in [0, 1).

    The same `shape` and `seed` give the same array on every machine and backend (NumPy's
    `default_rng`), so checks compare exact numbers.

    Args:
        shape: the array's shape, e.g. `(batch, height, width, channels)`.
        seed: the generator's seed.

    Returns:
        A float32 NumPy array of `shape`, uniform in [0, 1).

    Examples:
        >>> x = random_images((2, 4, 4, 3))
        >>> x.shape, x.dtype, bool(x.min() >= 0 and x.max() < 1)
        ((2, 4, 4, 3), dtype('float32'), True)
        >>> bool((x == random_images((2, 4, 4, 3))).all())
        True
    """
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def perturb_batch_norm_statistics(model, seed=0):
    """Gives every BatchNorm non-trivial moving statistics and affine parameters.

    Freshly initialised BatchNorms are the identity in inference, which would hide a
    statistic lost in a round trip; random ones make every number matter.

    Every variable named `moving_mean`, `beta` (normal, std 0.1), `moving_variance` or
    `gamma` (uniform in [0.5, 1.5]) is set, in place.

    Args:
        model: a built Keras model (or layer).
        seed: the generator's seed.

    Examples:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization()])
        >>> perturb_batch_norm_statistics(model)
        >>> model.layers[0].moving_variance.numpy().round(3)
        array([1.357, 0.534, 1.23 , 0.676], dtype=float32)
    """
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        name = variable.path.rsplit("/", 1)[-1]
        shape = tuple(variable.shape)
        if name == "moving_mean":
            variable.assign(rng.normal(0.0, 0.1, shape).astype(variable.dtype))
        elif name == "moving_variance":
            variable.assign(rng.uniform(0.5, 1.5, shape).astype(variable.dtype))
        elif name == "gamma":
            variable.assign(rng.uniform(0.5, 1.5, shape).astype(variable.dtype))
        elif name == "beta":
            variable.assign(rng.normal(0.0, 0.1, shape).astype(variable.dtype))


def assert_keras_file_round_trip(model, inputs, directory, atol=0.0):
    """Saves `model` to a `.keras` file, reloads it and checks that it computes the same.

    The outputs in inference (`training=False`) must agree within `atol`, and the reloaded
    model must have the same weights in the same order, by path (a Sequential model's paths
    lose its name on reload: check functional models).

    Args:
        model: a built functional Keras model.
        inputs: a batch to compare the outputs on.
        directory: the folder for the file (`<model.name>.keras`).
        atol: the largest absolute difference allowed (exact by default).

    Returns:
        The reloaded model.

    Raises:
        AssertionError: the outputs differ by more than `atol`, or the weights' paths differ.

    Examples:
        >>> import keras
        >>> from keras_attn.layers import SqueezeExcite
        >>> inputs = keras.Input((8, 8, 16))
        >>> model = keras.Model(inputs, SqueezeExcite(name="se")(inputs), name="gate")
        >>> reloaded = assert_keras_file_round_trip(model, random_images((2, 8, 8, 16)), ".")
        >>> [weight.path for weight in reloaded.weights]
        ['se/fc1/kernel', 'se/fc1/bias', 'se/fc2/kernel', 'se/fc2/bias']
    """
    path = os.path.join(directory, f"{model.name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    expected = keras.ops.convert_to_numpy(model(inputs, training=False))
    actual = keras.ops.convert_to_numpy(reloaded(inputs, training=False))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol)
    assert [w.path for w in reloaded.weights] == [w.path for w in model.weights]
    return reloaded


def assert_config_round_trip(layer, inputs):
    """`from_config(get_config())` rebuilds a layer that computes the same function.

    The clone's config must equal the layer's, and with the layer's weights its output
    in inference must be identical: a constructor argument that `get_config` forgets fails
    here.

    Args:
        layer: a built layer (called once on inputs of this shape).
        inputs: a batch to call both layers on.

    Raises:
        AssertionError: the configs or the outputs differ.

    Examples:
        >>> from keras_attn.layers import SqueezeExcite
        >>> gate, x = SqueezeExcite(rd_ratio=0.25), random_images((2, 8, 8, 16))
        >>> _ = gate(x)                                       # built
        >>> assert_config_round_trip(gate, x)
    """
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone(inputs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(clone(inputs, training=False)),
        keras.ops.convert_to_numpy(layer(inputs, training=False)),
    )


def assert_fit_changes_every_weight(model, inputs, labels, from_logits=False, optimizer=None,
                                    run_eagerly=False):
    """One `model.fit` step must change every trainable weight of `model`.

    `labels` are integer class ids for a classifier, or arrays shaped like the model's
    output (trained with mean squared error) for any other model. The optimizer defaults to
    SGD with learning rate 0.1. A weight that no gradient reaches (a branch cut off, a
    layer left out of the graph) fails here.

    Args:
        model: a Keras model; it is compiled and trained for one step (its weights change).
        inputs: one batch (all of it is the step's batch).
        labels: integer class ids (1-D) or targets shaped like the output.
        from_logits: whether the classifier's outputs are logits.
        optimizer: a Keras optimizer; SGD(0.1) by default.
        run_eagerly: step without compiling the train step (`keras.Model.compile`'s
            argument): for a one-step check of a large network, compiling costs several
            times the step.

    Raises:
        AssertionError: the loss is not finite, or a trainable weight did not change (the
            message lists them).

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
        ...                           keras.layers.Dense(3)])
        >>> assert_fit_changes_every_weight(model, random_images((8, 4)), np.arange(8) % 3,
        ...                                 from_logits=True)
    """
    if np.asarray(labels).ndim == 1:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    else:
        loss = keras.losses.MeanSquaredError()
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.1), loss=loss,
                  run_eagerly=run_eagerly)
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    history = model.fit(inputs, labels, batch_size=len(inputs), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    unchanged = [
        w.path
        for w, old in zip(model.trainable_weights, before)
        if np.array_equal(keras.ops.convert_to_numpy(w), old)
    ]
    assert not unchanged, f"a fit step left these trainable weights unchanged: {unchanged}"


def gradients(function, *arguments):
    """Gradients of the scalar `function(*arguments)` w.r.t. every argument, as NumPy arrays.

    Works on every Keras backend (TensorFlow's tape, `jax.grad`, torch autograd), so that
    layers can be checked for equal gradients wherever they run.

    Args:
        function: a function of tensors returning a scalar tensor.
        *arguments: its arguments (arrays, tensors or variables: their current values are
            used).

    Returns:
        A list of NumPy arrays, one gradient per argument, in order.

    Raises:
        NotImplementedError: a Keras backend other than TensorFlow, JAX and PyTorch.

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> a, b = np.array([1.0, 2.0], "float32"), np.array([3.0, 4.0], "float32")
        >>> gradients(lambda a, b: keras.ops.sum(a * a * b), a, b)   # (2ab, a^2)
        [array([ 6., 16.], dtype=float32), array([1., 4.], dtype=float32)]
    """
    backend = keras.backend.backend()
    # Plain tensors (not variables) of the current values, so every backend differentiates.
    arguments = [keras.ops.stop_gradient(keras.ops.convert_to_tensor(a)) for a in arguments]
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(arguments)
            value = function(*arguments)
        grads = tape.gradient(value, arguments)
    elif backend == "jax":
        import jax

        grads = jax.grad(function, argnums=tuple(range(len(arguments))))(*arguments)
    elif backend == "torch":
        arguments = [a.detach().requires_grad_(True) for a in arguments]
        function(*arguments).backward()
        grads = [a.grad for a in arguments]
    else:
        raise NotImplementedError(f"gradients on the {backend!r} backend")
    return [keras.ops.convert_to_numpy(g) for g in grads]


def build_with_reference_weights(layer, reference, input_shape):
    """Builds `layer` and `reference` (a Keras `Conv2D`) for `input_shape`, gives `reference`
    random weights and `layer` the same ones, and returns random inputs of that shape.

    The weights are centred (uniform in [-0.5, 0.5)), so outputs are of order one, as in a
    trained network, and float32 rounding stays far below the checks' tolerances.

    Args:
        layer: a convolution with `Conv2D`'s variables (`GroupedConv2D`,
            `PointwiseConv2D`, ...), not built.
        reference: a `keras.layers.Conv2D` with the same filters, kernel, groups and bias.
        input_shape: `(batch, height, width, channels)`.

    Returns:
        A float32 NumPy array of `input_shape` (`random_images`, seed 5).

    Raises:
        ValueError: the two layers' weights differ in number or shape (Keras'
            `set_weights`).

    Examples:
        >>> import keras
        >>> from keras_attn.layers import GroupedConv2D
        >>> layer = GroupedConv2D(8, 3, groups=4, implementation="split")
        >>> reference = keras.layers.Conv2D(8, 3, groups=4)
        >>> x = build_with_reference_weights(layer, reference, (2, 6, 6, 8))
        >>> x.shape
        (2, 6, 6, 8)
        >>> assert_convolution_equals(layer, reference, x)
    """
    reference.build(input_shape)
    layer.build(input_shape)
    # Centred weights: with positive ones every output is a sum of positive products (about
    # 32 for 128 inputs), where float32's step is 4e-6 and two summation orders differ by a
    # few steps; centred, the outputs are of order one, as in a trained network.
    reference.set_weights([random_images(w.shape, seed=i) - 0.5
                           for i, w in enumerate(reference.weights)])
    layer.set_weights(reference.get_weights())
    return random_images(input_shape, seed=5)


def assert_convolution_equals(layer, reference, inputs, atol=1e-5):
    """`layer` computes what `reference`, a Keras `Conv2D` with the same weights, computes.

    Compares the outputs on `inputs`, then the gradients of the convolution (plus the bias,
    where there is one) with respect to the inputs, the kernel and the bias under a fixed
    random cotangent, each relative to its largest entry: an input's gradient sums many
    products.

    Args:
        layer: a convolution subclassing `Conv2D` (its `convolution_op` is what is
            differentiated), with the reference's weights (`build_with_reference_weights`).
        reference: the `keras.layers.Conv2D`.
        inputs: a batch (a NumPy array).
        atol: the largest absolute difference allowed, for the outputs and for each
            gradient scaled by its largest entry (when that exceeds 1).

    Raises:
        AssertionError: the outputs or a gradient differ by more than `atol`.

    Examples:
        >>> import keras
        >>> from keras_attn.layers import PointwiseConv2D
        >>> layer = PointwiseConv2D(8, groups=2)
        >>> reference = keras.layers.Conv2D(8, 1, groups=2)
        >>> x = build_with_reference_weights(layer, reference, (2, 4, 4, 8))
        >>> assert_convolution_equals(layer, reference, x)
    """
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(inputs)),
                               keras.ops.convert_to_numpy(reference(inputs)), rtol=0, atol=atol)
    for ours, theirs in zip(_convolution_gradients(layer, inputs),
                            _convolution_gradients(reference, inputs), strict=True):
        scale = max(1.0, np.abs(theirs).max())
        np.testing.assert_allclose(ours / scale, theirs / scale, rtol=0, atol=atol)


def _convolution_gradients(layer, inputs):
    cotangent = keras.ops.convert_to_tensor(
        random_images(layer.compute_output_shape(inputs.shape), seed=7))

    def loss(x, kernel, *bias):
        y = type(layer).convolution_op(layer, x, kernel)
        return keras.ops.sum((y + bias[0] if bias else y) * cotangent)

    variables = [layer.kernel] + ([layer.bias] if layer.use_bias else [])
    return gradients(loss, inputs, *variables)
