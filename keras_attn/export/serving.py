"""The serving functions every export shares: pixels in, probabilities out, preprocessing inside.

A served network must not depend on the client normalising images the way the checkpoint was
trained, so the exported graph takes RGB pixels in [0, 255] and applies the model's own mean
and std (and, for encoded images, timm's resize and center crop) itself.
"""

import dataclasses

import keras
import tensorflow as tf

from keras_attn import data
from keras_attn.applications import imagenet_utils, specs
from keras_attn.optimize import optimize_for_inference


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """How a served network sees its input, and how its classes are named.

    Attributes:
        size: height and width of the network's input.
        mean, std: per-channel normalisation of pixels scaled to [0, 1].
        crop_pct, interpolation: timm's evaluation resize and center crop for encoded images.
        labels: one name per class.
    """

    size: int
    mean: tuple
    std: tuple
    crop_pct: float
    interpolation: str
    labels: tuple


def serving_config(model, weights="imagenet", labels=None, model_name=None):
    """The `ServingConfig` of a classifier built by `keras_attn.applications`.

    Args:
        model: a Keras classifier: input `(height, width, 3)` with height == width, output
            `(batch, classes)`.
        weights: the published tag whose preprocessing to use (`eval_config`); a network
            that is not in the registry, or has no published weights, gets ImageNet's
            mean and std, crop 0.875, bicubic.
        labels: class names; default: ImageNet's for 1000 classes, else "0", "1", ...
        model_name: the registry name of the network (whose preprocessing applies); default
            `model.name`, what `get_model` names it. Give it for a renamed or wrapped network.

    Returns:
        A `ServingConfig`.
    """
    height, width, channels = _input_shape(model)
    classes = _num_classes(model)
    name = model.name if model_name is None else specs.get_spec(model_name).name
    if name in specs.SPECS:
        config = data.eval_config(name, weights)
    elif weights not in (None, "imagenet"):
        # A tag names one checkpoint's preprocessing; without the network's name it would be
        # silently replaced by the defaults below.
        raise ValueError(
            f"`weights`={weights!r} names a published tag, but {model.name!r} is not a "
            "registry name, so its preprocessing cannot be looked up. Pass model_name= (the "
            "network's registry name), or weights=None."
        )
    else:
        config = {"crop_pct": 0.875, "interpolation": "bicubic",
                  "mean": specs.IMAGENET_MEAN, "std": specs.IMAGENET_STD}
    if labels is None:
        if classes == imagenet_utils.NUM_CLASSES:
            labels = [name for _, name in imagenet_utils.imagenet_classes()]
        else:
            labels = [str(i) for i in range(classes)]
    labels = tuple(str(label) for label in labels)
    if len(labels) != classes:
        raise ValueError(
            f"`labels` must name each of the model's {classes} classes; received "
            f"{len(labels)} labels."
        )
    return ServingConfig(size=height, mean=tuple(config["mean"]), std=tuple(config["std"]),
                         crop_pct=config["crop_pct"], interpolation=config["interpolation"],
                         labels=labels)


def _input_shape(model):
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[1] != shape[2]:
        raise ValueError(
            "Export needs a model with a fixed square RGB input, (batch, size, size, 3); "
            f"{model.name!r} takes {shape}. Build it with input_shape=(size, size, 3)."
        )
    return shape[1:]


def _num_classes(model):
    shape = tuple(model.output_shape) if not isinstance(model.output_shape, list) else None
    if shape is None or len(shape) != 2:
        raise ValueError(
            "Export needs a classifier (output (batch, classes)); "
            f"{model.name!r} returns {model.output_shape}. Build it with include_top=True."
        )
    returns_logits(model)  # raises unless the model ends in a classifier
    return shape[1]


def returns_logits(model):
    """Whether the model's output is a classifier's logits, to which serving applies softmax.

    True when it ends in a `Dense` (or an `Activation`) without activation; False when its
    last layer applies an activation itself (softmax, or sigmoid for a multi-label head, or a
    `Softmax` layer): those outputs are served as the model computes them. Anything else (a
    pooled feature vector, say) is no classifier and raises a `ValueError`.
    """
    last = model.layers[-1]
    while isinstance(last, keras.Model) and last.layers:  # a classifier nested in a wrapper
        last = last.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return False
    if isinstance(last, (keras.layers.Dense, keras.layers.Activation)):
        return last.activation in (None, keras.activations.linear)
    raise ValueError(
        f"Export needs a classifier: {model.name!r} ends in a {type(last).__name__} "
        f"({last.name!r}), not in a Dense layer (logits, or with its activation) or a Softmax. "
        "Build it with include_top=True, or add your own head."
    )


def inference_model(model):
    """The model every export writes: `model` with each BatchNorm folded into the convolution
    before it (`keras_attn.optimize_for_inference`), an equal function. Its 1x1 convolutions
    stay convolutions: the runtimes' converters and kernels (TFLite, ONNX, quantization) take
    them as such; the exports are verified against `model` itself."""
    return optimize_for_inference(model, pointwise_matmul_max_pixels=0)


NORMALIZATION_SCOPE = "keras_attn_normalize"


def probabilities_fn(model, config, logits=False):
    """`images (batch, size, size, 3) float32 in [0, 255] -> probabilities (batch, classes)`.

    With `logits=True` it returns the classifier's scores before softmax instead (the model
    must be built with `classifier_activation=None`): what int8 is measured on, since int8
    `SOFTMAX` has a fixed output step of 1/256 that near-uniform probabilities fall below.
    """
    mean = [value * 255.0 for value in config.mean]
    scale = [1.0 / (value * 255.0) for value in config.std]
    softmax = returns_logits(model)
    if logits and not softmax:
        raise ValueError(
            f"`logits=True` needs a model that returns logits; {model.name!r} ends in an "
            "activation. Build it with classifier_activation=None."
        )
    softmax = softmax and not logits

    def probabilities(images):
        # A signature's shape is not enforced when it is called (TF Serving, a loaded
        # SavedModel): check it in the graph, for an error that says what was expected.
        images = tf.ensure_shape(tf.cast(images, tf.float32),
                                 [None, config.size, config.size, 3])
        # Constants made here, inside the traced function, stay constants of its graph;
        # tensors captured from outside would become inputs of an ONNX file.
        # One name scope, which the converters keep in their node names: the int8 exports'
        # keep_float=["input"] finds the normalisation by it.
        with tf.name_scope(NORMALIZATION_SCOPE):
            normalized = (images - tf.constant(mean)) * tf.constant(scale)
        outputs = tf.cast(model(normalized, training=False), tf.float32)
        return tf.nn.softmax(outputs) if softmax else outputs

    return probabilities


def decode_and_crop_fn(config):
    """`encoded JPEG/PNG/GIF/BMP string -> (size, size, 3) float32 pixels`, timm's crop."""

    def decode_and_crop(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return data.resize_and_center_crop(image, config.size, config.crop_pct,
                                           config.interpolation)

    return decode_and_crop


def pixels_signature(config, batch=None):
    return tf.TensorSpec([batch, config.size, config.size, 3], tf.float32, name="images")


def bytes_signature():
    return tf.TensorSpec([None], tf.string, name="images")


def endpoints(model, config, top_k=5):
    """The two serving functions, as `{signature name: (function, input signature)}`:

    - `serving_default`: `images` float32 pixels -> `{"probabilities"}`;
    - `serving_bytes`: `images` encoded strings -> `{"classes", "labels", "scores"}`, the
      `top_k` best classes of each image.
    """
    probabilities = probabilities_fn(model, config)
    decode_and_crop = decode_and_crop_fn(config)
    labels = tf.constant(config.labels)
    top_k = min(top_k, len(config.labels))

    def serving_default(images):
        return {"probabilities": probabilities(images)}

    def serving_bytes(images):
        pixels = tf.map_fn(
            decode_and_crop, images,
            fn_output_signature=tf.TensorSpec([config.size, config.size, 3], tf.float32),
        )
        scores, classes = tf.math.top_k(probabilities(pixels), k=top_k)
        return {"classes": classes, "labels": tf.gather(labels, classes), "scores": scores}

    return {
        "serving_default": (serving_default, [pixels_signature(config)]),
        "serving_bytes": (serving_bytes, [bytes_signature()]),
    }


def write_saved_model(model, path, functions):
    """Writes `model` as a SavedModel whose signatures are `functions`
    (`{name: (function, input signature)}`, as `endpoints` returns)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, signature) in functions.items():
        archive.add_endpoint(name, function, input_signature=signature)
    archive.write_out(path, verbose=False)


class _ServingModel(keras.Model):
    """A Keras model whose call is `probabilities_fn`: what Keras' own exporters convert."""

    def __init__(self, model, config, logits=False):
        super().__init__(name=f"{model.name}_serving")
        self.classifier = model
        self._probabilities = probabilities_fn(model, config, logits)
        # Its only weights are the classifier's, built already; Keras' exporters refuse a model
        # that was never built.
        self.built = True

    def call(self, images):
        return self._probabilities(images)


def serving_model(model, config, logits=False):
    """`model` behind the pixels-in, probabilities-out function, as a Keras model that
    `model.export(format="onnx" | "openvino")` converts (with `pixels_signature(config)` as
    its input signature): the ONNX and OpenVINO exports prepare the network here, and only
    here."""
    return _ServingModel(inference_model(model), config, logits)
