"""Natural images without a download, and networks whose activations have realistic ranges.

The photographs bundled with scikit-image and scikit-learn (NOTES.md), split by photograph into
two sets that share no picture: `CALIBRATION` (BatchNorm re-estimation and int8 calibration)
and `HELD_OUT` (evaluation). Random crops of them, resized, are the images.

A network with random weights computes nothing meaningful, and its BatchNorms' statistics
(random or fresh) do not match what their inputs are: activations then have arbitrary ranges,
on which quantization measures little. `reestimate_batch_norm` sets every BatchNorm's moving
mean and variance to the statistics of its input on natural images, as a trained network's
are, so that each layer sees the ranges a network of that shape sees on photographs.
"""

import numpy as np

# Colour and grayscale photographs (no drawings, text or synthetic patterns), by where they come
# from. Grayscale ones are repeated on the three channels.
_SKIMAGE = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
            "immunohistochemistry", "retina", "stereo_motorcycle", "camera", "brick", "grass",
            "gravel", "moon", "clock", "coins", "cell")
_SKLEARN = ("china.jpg", "flower.jpg")

HELD_OUT = ("chelsea", "rocket", "flower.jpg", "camera", "grass", "coins")
CALIBRATION = tuple(name for name in (*_SKIMAGE, *_SKLEARN) if name not in HELD_OUT)


def photographs(names):
    """`{name: uint8 RGB array}` of the bundled photographs `names`."""
    import skimage.data

    sklearn_images = None
    result = {}
    for name in names:
        if name in _SKLEARN:
            if sklearn_images is None:
                from sklearn.datasets import load_sample_images

                bunch = load_sample_images()
                sklearn_images = dict(zip((f.rsplit("/", 1)[-1] for f in bunch.filenames),
                                          bunch.images))
            image = sklearn_images[name]
        else:
            image = getattr(skimage.data, name)()
            if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
                image = image[0]
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        result[name] = image[..., :3].astype("uint8")
    return result


def crops(names, count, size, seed):
    """`count` random square crops of the photographs `names`, resized to `size`: float32 RGB
    pixels in [0, 255], `(count, size, size, 3)`. Each crop's side is 30-100% of its
    photograph's shorter side, at a random place, flipped left-right half of the time; the
    photographs take turns."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    images = list(photographs(names).values())
    result = np.empty((count, size, size, 3), "float32")
    for index in range(count):
        image = images[index % len(images)]
        height, width = image.shape[:2]
        side = int(min(height, width) * rng.uniform(0.3, 1.0))
        top = rng.integers(0, height - side + 1)
        left = rng.integers(0, width - side + 1)
        crop = image[top:top + side, left:left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        resized = tf.image.resize(crop[None].astype("float32"), (size, size), "bilinear",
                                  antialias=True)
        result[index] = np.clip(resized.numpy()[0], 0.0, 255.0)
    return result


def batch_norms(model):
    """Every BatchNormalization of `model`, those inside attention layers included."""
    import keras

    return [layer for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)]


def reestimate_batch_norm(model, images, preprocess, batch_size=32):
    """Sets every BatchNorm's moving mean and variance to its input's statistics on `images`.

    The network runs in training mode (each BatchNorm normalises with its batch's statistics)
    one batch at a time; the moving statistics are the average of the batches' (momentum
    `(k - 1) / k` at batch k), and the momenta are restored afterwards.

    Args:
        model: a Keras network.
        images: float32 pixels `(n, size, size, 3)`.
        preprocess: `pixels -> network input` (the model's normalisation).
        batch_size: images per forward pass.
    """
    layers = batch_norms(model)
    momenta = [layer.momentum for layer in layers]
    try:
        for index, start in enumerate(range(0, len(images), batch_size)):
            for layer in layers:
                layer.momentum = index / (index + 1)
            model(preprocess(images[start:start + batch_size]), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
