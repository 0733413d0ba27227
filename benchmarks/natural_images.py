"""Natural photographs without a download: a small classification task of real images.

The photographs bundled with scikit-image and scikit-learn (NOTES.md), 18 of them. The task:
name the photograph a crop comes from. Each photograph is cut in two by a vertical line at
`TRAIN_FRACTION` of its width; crops of the left part train a network and calibrate int8,
crops of the right part are the held-out images, whose pixels neither saw.

`reestimate_batch_norm` sets every BatchNorm's moving statistics to those of its input on
given images ("precise BatchNorm"): after a short training the moving averages still remember
their initial values, and the network in inference mode would not compute what it learnt.
"""

import numpy as np

# Colour and grayscale photographs (no drawings, text or synthetic patterns), by where they come
# from. Grayscale ones are repeated on the three channels.
_SKIMAGE = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
            "immunohistochemistry", "retina", "stereo_motorcycle", "camera", "brick", "grass",
            "gravel", "moon", "clock", "coins", "cell")
_SKLEARN = ("china.jpg", "flower.jpg")
PHOTOGRAPHS = (*_SKIMAGE, *_SKLEARN)
TRAIN_FRACTION = 0.6
PARTS = ("train", "held_out")


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


def crops(part, count, size, seed, names=PHOTOGRAPHS):
    """`count` random square crops of one part of the photographs `names`, resized to `size`,
    and their labels (the photograph's index in `names`).

    Args:
        part: "train" (each photograph's columns left of `TRAIN_FRACTION` of its width) or
            "held_out" (the columns right of it).
        count: crops, the photographs taking turns.
        size: height and width of each crop after resizing.
        seed: the crops' random places, sides and flips.
        names: the photographs, the classes in this order.

    Returns:
        `(pixels, labels)`: float32 RGB in [0, 255], `(count, size, size, 3)`, and int32
        `(count,)`. A crop's side is 20-40% of its photograph's shorter side (so that crops of
        both parts have the same scale and fit the narrower part), at a random place of the
        part, flipped left-right half of the time.
    """
    import tensorflow as tf

    if part not in PARTS:
        raise ValueError(f"`part` must be one of {PARTS}; received part={part!r}.")
    rng = np.random.default_rng(seed)
    images = list(photographs(names).values())
    pixels = np.empty((count, size, size, 3), "float32")
    labels = np.arange(count, dtype="int32") % len(images)
    for index, label in enumerate(labels):
        image = images[label]
        height, width = image.shape[:2]
        cut = int(width * TRAIN_FRACTION)
        left, right = (0, cut) if part == "train" else (cut, width)
        side = int(min(height, width) * rng.uniform(0.2, 0.4))
        top = rng.integers(0, height - side + 1)
        start = rng.integers(left, right - side + 1)
        crop = image[top:top + side, start:start + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        resized = tf.image.resize(crop[None].astype("float32"), (size, size), "bilinear",
                                  antialias=True)
        pixels[index] = np.clip(resized.numpy()[0], 0.0, 255.0)
    return pixels, labels


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
