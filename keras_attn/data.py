"""Images in, network inputs out: decoding, and timm's evaluation resize and center crop.

timm evaluates a checkpoint by resizing the shorter side of an image to
`floor(size / crop_pct)` with the checkpoint's interpolation, cropping the central
`size x size`, and normalising with its mean and std. `eval_transform` does the same, so that
an evaluation here reproduces timm's protocol (resizing is TensorFlow's, antialiased, where
timm uses PIL: expect agreement, not identical pixels).
"""

import math
import os

import tensorflow as tf

from keras_attn import weights as published
from keras_attn.applications import imagenet_utils, specs

__all__ = [
    "eval_config", "eval_transform", "load_image", "resize_and_center_crop",
]

INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "area")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")  # what `load_image` decodes


def load_image(path):
    """Decodes a JPEG, PNG, GIF or BMP file into an RGB `uint8` tensor (height, width, 3).

    Grayscale and RGBA images become RGB; of an animated GIF, the first frame is kept.

    Args:
        path: the image file (a string or path-like).

    Returns:
        A `tf.Tensor` of dtype uint8, shape (height, width, 3).

    Raises:
        FileNotFoundError: there is no file at `path`.
        ValueError: the file does not decode as an image.

    Examples:
        >>> import tensorflow as tf
        >>> pixels = tf.zeros((48, 64, 1), tf.uint8)                # a grayscale PNG
        >>> tf.io.write_file("gray.png", tf.io.encode_png(pixels))
        >>> image = load_image("gray.png")
        >>> image.shape, image.dtype.name
        (TensorShape([48, 64, 3]), 'uint8')
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Image not found: {path!r}.")
    try:
        return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except tf.errors.InvalidArgumentError as error:
        raise ValueError(f"Could not decode {path!r} as an image: {error.message}") from None


def resize_and_center_crop(image, size, crop_pct=0.875, interpolation="bicubic"):
    """Resizes the shorter side to `floor(size / crop_pct)`, then crops the central square.

    This is timm's (and torchvision's) evaluation crop, `Resize(floor(size / crop_pct))`
    then `CenterCrop(size)`, with TensorFlow's antialiased resize.

    Args:
        image: a (height, width, channels) image tensor.
        size: side of the output square.
        crop_pct: fraction of the resized shorter side that the crop keeps.
        interpolation: "bilinear", "bicubic", "nearest" or "area".

    Returns:
        A float32 (size, size, channels) tensor, values in the input's range.

    Raises:
        ValueError: an unknown `interpolation`, `crop_pct` outside (0, 1], or `image` not
            of rank 3 (a batch).

    Examples:
        >>> import tensorflow as tf
        >>> image = tf.zeros((300, 400, 3), tf.uint8)
        >>> crop = resize_and_center_crop(image, 224)   # 300x400 -> 256x341 -> 224x224
        >>> crop.shape, crop.dtype.name
        (TensorShape([224, 224, 3]), 'float32')
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"`interpolation` must be one of {INTERPOLATIONS}; received {interpolation!r}."
        )
    if not 0 < crop_pct <= 1:
        raise ValueError(f"`crop_pct` must be in (0, 1]; received crop_pct={crop_pct!r}.")
    image = tf.convert_to_tensor(image)
    if image.shape.rank is not None and image.shape.rank != 3:
        raise ValueError(
            "`image` must be one (height, width, channels) image; received shape "
            f"{tuple(image.shape)}. For a batch, map over its images (tf.map_fn, tf.data)."
        )
    scale = math.floor(size / crop_pct)
    height = tf.cast(tf.shape(image)[0], tf.float32)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    shorter = tf.minimum(height, width)
    # torchvision's Resize(int): the shorter side becomes `scale`, the longer one scales along.
    new_height = tf.cast(tf.math.floor(scale * height / shorter), tf.int32)
    new_width = tf.cast(tf.math.floor(scale * width / shorter), tf.int32)
    resized = tf.image.resize(
        tf.cast(image, tf.float32), tf.stack([new_height, new_width]),
        method=interpolation, antialias=True,
    )
    top = tf.cast(tf.round(tf.cast(new_height - size, tf.float32) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(new_width - size, tf.float32) / 2.0), tf.int32)
    return resized[top : top + size, left : left + size, :]


def eval_config(model, weights="imagenet"):
    """Input size, crop_pct, interpolation, mean and std for evaluating `model`.

    From the manifest for a published tag (`weights`), so that an evaluation uses the
    preprocessing the checkpoint was measured with; from the registry row, with timm's
    defaults (crop 0.875, bicubic), for a network without published weights or `weights=None`.

    Args:
        model: a registry name or a `NetworkSpec` (a row of the table, perhaps replaced).
        weights: `"imagenet"` (the default tag), a published tag, or None (the registry
            row's defaults). For a network without published weights it is ignored.

    Returns:
        A dict with `input_size` (int), `crop_pct`, `interpolation`, `mean` and `std` (lists
        of three floats): the arguments of `resize_and_center_crop` and of the
        normalisation.

    Raises:
        ValueError: `model` is no registry name, or `weights` is not one of its published
            tags.

    Examples:
        >>> eval_config("seresnet50")          # its default tag, a1_in1k
        {'input_size': 224, 'crop_pct': 0.95, 'interpolation': 'bicubic',
         'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}
        >>> eval_config("seresnet20_cifar")["input_size"]   # no published weights
        32
    """
    spec = specs.get_spec(model)
    if weights is not None and published.tags(spec.name):
        info = published.tag_info(spec.name, published.resolve_tag(spec.name, weights))
        return {key: info[key] for key in ("input_size", "crop_pct", "interpolation", "mean",
                                           "std")}
    return {"input_size": spec.default_size, "crop_pct": 0.875, "interpolation": "bicubic",
            "mean": list(spec.mean), "std": list(spec.std)}


def eval_transform(model, weights="imagenet"):
    """A function from a uint8 RGB image to the normalised crop `model` expects.

    timm's evaluation transform for the checkpoint (`eval_config`): `resize_and_center_crop`
    with its size, crop and interpolation, then `(x / 255 - mean) / std`.

    Args:
        model: a registry name or a `NetworkSpec`, as in `eval_config`.
        weights: `"imagenet"`, a published tag, or None, as in `eval_config`.

    Returns:
        A function from one (height, width, 3) image in [0, 255] to a float32
        (size, size, 3) tensor; map it over a `tf.data.Dataset` or stack its results.

    Raises:
        ValueError: `model` is no registry name, or `weights` is not one of its tags.

    Examples:
        >>> import tensorflow as tf
        >>> transform = eval_transform("seresnet50")
        >>> white = tf.fill((300, 400, 3), tf.constant(255, tf.uint8))
        >>> crop = transform(white)
        >>> crop.shape, crop[0, 0].numpy().round(3)     # (1 - mean) / std
        (TensorShape([224, 224, 3]), array([2.249, 2.429, 2.64 ], dtype=float32))

        On files:

        ```python
        transform = eval_transform("resnest50d")
        batch = tf.stack([transform(load_image(path)) for path in paths])
        ```
    """
    config = eval_config(model, weights)
    spec = specs.get_spec(model).replace(mean=tuple(config["mean"]), std=tuple(config["std"]))

    def transform(image):
        crop = resize_and_center_crop(
            image, config["input_size"], config["crop_pct"], config["interpolation"]
        )
        return imagenet_utils.preprocess_input(crop, model=spec)

    return transform
