"""Training data on tf.data: the embedded digits, image folders and TFDS datasets.

`load_data(...)` returns the raw splits (uint8 RGB images and integer labels);
`train_dataset` and `eval_dataset` turn a split into global batches of normalised images and
one-hot labels: random-resized crop, flips, RandAugment, MixUp/CutMix for training; resize
and center crop for evaluation. The strategy splits each global batch among its replicas.
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from keras_attn import data as image_data

__all__ = [
    "Data", "describe", "digits", "eval_dataset", "image_folder", "load_data", "Split",
    "steps_per_epoch", "tfds_dataset", "train_dataset",
]

AUTOTUNE = tf.data.AUTOTUNE
IMAGE_EXTENSIONS = image_data.IMAGE_EXTENSIONS


@dataclasses.dataclass
class Split:
    """Images as a `tf.data.Dataset` of `(uint8 (h, w, 3), int32 label)` and its size.

    The size is kept beside the dataset because a `tf.data` pipeline of decoded files does
    not know its own length, and the steps per epoch depend on it.

    Attributes:
        dataset: a `tf.data.Dataset` of `(image, label)`: a uint8 RGB image of any size
            (height, width, 3) and an int32 class id.
        size: the number of examples in `dataset`.

    Examples:
        >>> import numpy as np
        >>> import tensorflow as tf
        >>> images, labels = np.zeros((6, 8, 8, 3), "uint8"), np.arange(6, dtype="int32") % 2
        >>> split = Split(tf.data.Dataset.from_tensor_slices((images, labels)), size=6)
        >>> split.size, split.dataset.element_spec[0].shape
        (6, TensorShape([8, 8, 3]))
    """

    dataset: tf.data.Dataset
    size: int


@dataclasses.dataclass
class Data:
    """A dataset ready for training: the two splits, the class names, and how the images
    may be augmented (what suits handwritten digits does not suit photographs).

    `load_data`, `digits`, `image_folder` and `tfds_dataset` make it; `num_classes` is
    `len(class_names)`.

    Attributes:
        train, val: the splits.
        class_names: label -> name.
        image_size: the input size that suits the images (None: the network's default).
        flip: whether a horizontal flip keeps an image's label.
        min_crop: smallest area fraction that the random-resized crop keeps.
        crop_pct: center-crop fraction for evaluation (1.0: resize only).
        skipped: files that could not be decoded and were left out.

    Examples:
        >>> data = digits()
        >>> data.num_classes, data.image_size, data.flip, data.crop_pct
        (10, 32, False, 1.0)
    """

    train: Split
    val: Split
    class_names: list
    image_size: int = None
    flip: bool = True
    min_crop: float = 0.08
    crop_pct: float = 0.875
    skipped: list = dataclasses.field(default_factory=list)

    @property
    def num_classes(self):
        return len(self.class_names)


def load_data(dataset=None, data_dir=None, val_split=0.2, seed=0):
    """The data `--dataset` or `--data_dir` names (exactly one of them).

    Args:
        dataset: "digits" (`digits`, no download) or a TensorFlow Datasets name
            (`tfds_dataset`); None when `data_dir` is given.
        data_dir: an image folder (`image_folder`); None when `dataset` is given.
        val_split: the fraction of each class held out for validation, in (0, 1), where
            the data has no validation split of its own (digits, a folder without `val/`).
        seed: seed of that split.

    Returns:
        A `Data`.

    Raises:
        ValueError: both or neither of `dataset` and `data_dir`, or `val_split` outside
            (0, 1); and what `digits`, `image_folder` and `tfds_dataset` raise.

    Examples:
        >>> data = load_data("digits", val_split=0.2, seed=0)
        >>> data.train.size, data.val.size
        (1438, 359)
        >>> load_data("digits", data_dir="images")
        Traceback (most recent call last):
        ...
        ValueError: Give exactly one of --dataset (e.g. --dataset=digits) and --data_dir; ...
    """
    if (dataset is None) == (data_dir is None):
        raise ValueError(
            "Give exactly one of --dataset (e.g. --dataset=digits) and --data_dir; received "
            f"dataset={dataset!r}, data_dir={data_dir!r}."
        )
    if not 0 < val_split < 1:
        raise ValueError(f"--val_split must be in (0, 1); received {val_split!r}.")
    if data_dir is not None:
        return image_folder(data_dir, val_split, seed)
    if dataset == "digits":
        return digits(val_split, seed)
    return tfds_dataset(dataset)


def _stratified_split(labels, val_split, seed):
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        indices = rng.permutation(np.flatnonzero(labels == label))
        count = max(1, round(val_split * len(indices)))
        val.extend(indices[:count])
        train.extend(indices[count:])
    # Integer arrays even when empty (np.sort([]) is float, which cannot index).
    return np.sort(np.asarray(train, "int64")), np.sort(np.asarray(val, "int64"))


def digits(val_split=0.2, seed=0):
    """scikit-learn's 1,797 handwritten digits (bundled, no download), as 32x32 RGB images.

    The 8x8 images (values 0-16) are scaled to 0-255, resized bilinearly to 32x32 and
    repeated over three channels, so that ImageNet networks take them. The split is
    stratified: `val_split` of each class, at least one image, is held out.

    Args:
        val_split: the fraction of each class held out for validation.
        seed: seed of the split.

    Returns:
        A `Data` with 10 classes ("0" to "9"), `image_size=32`, no flips (a mirrored 2 is no
        2), crops of at least half the image, and no center crop in evaluation.

    Raises:
        ImportError: scikit-learn is missing (`pip install "keras-attn[train]"`).

    Examples:
        >>> data = digits(val_split=0.2, seed=0)
        >>> data.train.size, data.val.size, data.class_names[:3]
        (1438, 359, ['0', '1', '2'])
        >>> image, label = next(iter(data.train.dataset))
        >>> image.shape, image.dtype.name, label.dtype.name
        (TensorShape([32, 32, 3]), 'uint8', 'int32')
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            '--dataset=digits needs scikit-learn: pip install "keras-attn[train]".'
        ) from None
    bunch = load_digits()
    pixels = (bunch.images[..., None] * (255.0 / 16.0)).astype("float32")  # 0..16 -> 0..255
    images = tf.image.resize(pixels, (32, 32), method="bilinear").numpy()
    images = np.repeat(np.clip(np.round(images), 0, 255).astype("uint8"), 3, axis=-1)
    labels = bunch.target.astype("int32")
    train, val = _stratified_split(labels, val_split, seed)
    return Data(
        train=Split(tf.data.Dataset.from_tensor_slices((images[train], labels[train])),
                    len(train)),
        val=Split(tf.data.Dataset.from_tensor_slices((images[val], labels[val])), len(val)),
        class_names=[str(d) for d in range(10)],
        image_size=32,
        flip=False,  # a mirrored 2 is not a 2
        min_crop=0.5,  # a digit fills its image: small crops would cut it away
        crop_pct=1.0,
    )


def _class_files(root, classes=None):
    """`{class: [files]}` for the class folders under `root` (or the given `classes`)."""
    if classes is None:
        classes = sorted(
            entry.name for entry in os.scandir(root)
            if entry.is_dir() and entry.name not in ("train", "val") and
            not entry.name.startswith(".")
        )
    files = {}
    for name in classes:
        folder = os.path.join(root, name)
        found = []
        for directory, _, names in os.walk(folder):
            found.extend(os.path.join(directory, n) for n in sorted(names)
                         if n.lower().endswith(IMAGE_EXTENSIONS))
        files[name] = found
    return files


def _readable(paths):
    """The paths that decode as images (decoded in parallel once, before training)."""

    def probe(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return path, tf.shape(image)[0]

    readable = tf.data.Dataset.from_tensor_slices(paths).map(
        probe, num_parallel_calls=AUTOTUNE
    ).ignore_errors()
    return {path.decode() for path, _ in readable.as_numpy_iterator()}


def _decode(path, label):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape((None, None, 3))
    return image, label


def image_folder(data_dir, val_split=0.2, seed=0):
    """An image folder: `data_dir/<class>/*.jpg`, with `val/` (and `train/`) or `val_split`.

    The classes are the sub-folders (sorted; images in nested folders count for their
    class) of `train/` when it exists, else of `data_dir`. A `val/` folder is the
    validation split; without one, `val_split` of each class is held out. Files with an
    image extension (`.jpg`, `.jpeg`, `.png`, `.bmp`, `.gif`) that do not decode are left
    out and listed in `Data.skipped`; each file is decoded once here to find them.

    Args:
        data_dir: the folder.
        val_split: the fraction of each class held out when there is no `val/` folder.
        seed: seed of that split.

    Returns:
        A `Data` (its `image_size` None: the network's default size).

    Raises:
        FileNotFoundError: `data_dir` is not a folder.
        ValueError: no class folder; a class folder without images; `val/` without the
            training classes (or with others); or a split left without a readable image.

    Examples:
        >>> import os
        >>> import tensorflow as tf
        >>> for name in ("cat", "dog"):
        ...     os.makedirs(f"pets/{name}")
        ...     for i in range(3):
        ...         tf.io.write_file(f"pets/{name}/{i}.png",
        ...                          tf.io.encode_png(tf.zeros((16, 16, 3), tf.uint8)))
        >>> tf.io.write_file("pets/dog/broken.png", b"not an image")
        >>> data = image_folder("pets", val_split=0.3)
        >>> data.class_names, data.train.size, data.val.size
        (['cat', 'dog'], 4, 2)
        >>> data.skipped
        ['pets/dog/broken.png']
    """
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"--data_dir={data_dir!r} is not a folder.")
    val_root = os.path.join(data_dir, "val")
    train_root = os.path.join(data_dir, "train")
    if not os.path.isdir(train_root):
        train_root = data_dir
    train_files = _class_files(train_root)
    if not train_files:
        raise ValueError(
            f"--data_dir={data_dir!r} has no class folders in {train_root!r}: expected one "
            "sub-folder of images per class."
        )
    val_files = None
    if os.path.isdir(val_root):
        present = sorted(e.name for e in os.scandir(val_root) if e.is_dir())
        missing = sorted(set(train_files) - set(present))
        extra = sorted(set(present) - set(train_files))
        if missing or extra:
            raise ValueError(
                f"The validation split {val_root!r} must have the training classes: "
                f"missing {missing}, unknown {extra}."
            )
        val_files = _class_files(val_root, sorted(train_files))
    for split, files in (("training", train_files), ("validation", val_files or {})):
        empty = [name for name, found in files.items() if not found]
        if empty:
            raise ValueError(f"These {split} class folders have no images: {empty}.")

    class_names = sorted(train_files)
    everything = [p for files in (train_files, val_files or {}) for v in files.values() for p in v]
    readable = _readable(everything)
    skipped = sorted(set(everything) - readable)

    def paths_and_labels(files):
        pairs = [(p, i) for i, name in enumerate(class_names) for p in files[name]
                 if p in readable]
        return np.array([p for p, _ in pairs]), np.array([i for _, i in pairs], "int32")

    paths, labels = paths_and_labels(train_files)
    if val_files is None:
        train, val = _stratified_split(labels, val_split, seed)
        val_paths, val_labels = paths[val], labels[val]
        paths, labels = paths[train], labels[train]
    else:
        val_paths, val_labels = paths_and_labels(val_files)
    for split_name, split_paths, root in (("training", paths, train_root),
                                          ("validation", val_paths, val_root)):
        if len(split_paths) == 0:
            reason = ("--val_split holds out at least one image per class" if val_files is None
                      else f"no image under {root!r} decodes")
            raise ValueError(
                f"--data_dir={data_dir!r} leaves no readable image for {split_name} "
                f"({len(readable)} readable in all; {reason})."
            )

    def split(split_paths, split_labels):
        dataset = tf.data.Dataset.from_tensor_slices((split_paths, split_labels))
        return Split(dataset.map(_decode, num_parallel_calls=AUTOTUNE), len(split_paths))

    return Data(train=split(paths, labels), val=split(val_paths, val_labels),
                class_names=class_names, skipped=skipped)


def tfds_dataset(name):
    """A TensorFlow Datasets classification dataset (its train and validation/test splits).

    The validation split is TFDS's "validation" where the dataset has one, else "test".
    Grayscale images are made RGB. TFDS downloads and prepares the data on first use.

    Args:
        name: a TFDS name, e.g. "cifar10" or "imagenette/320px-v2".

    Returns:
        A `Data` with TFDS's class names and sizes, and the default augmentations.

    Raises:
        ImportError: tensorflow-datasets is missing.
        ValueError: TFDS has no dataset `name`.

    Examples:
        ```python
        data = tfds_dataset("cifar10")     # downloads CIFAR-10 on first use
        data.train.size, data.val.size     # (50000, 10000): its train and test splits
        ```
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ImportError(
            f"--dataset={name!r} is read with tensorflow-datasets: pip install "
            "tensorflow-datasets. Without it, use --dataset=digits or --data_dir."
        ) from None
    try:
        builder = tfds.builder(name)
    except tfds.core.registered.DatasetNotFoundError:
        # TFDS's own message lists every dataset it has (thousands of lines).
        raise ValueError(
            f"--dataset={name!r} is neither 'digits' nor a TensorFlow Datasets name "
            "(tfds.list_builders() lists them); for your own images, use --data_dir."
        ) from None
    val_name = "validation" if "validation" in builder.info.splits else "test"
    train, val = tfds.load(name, split=["train", val_name], as_supervised=True)

    def rgb(image, label):
        image = tf.image.grayscale_to_rgb(image) if image.shape[-1] == 1 else image
        return image, tf.cast(label, tf.int32)

    return Data(
        train=Split(train.map(rgb), builder.info.splits["train"].num_examples),
        val=Split(val.map(rgb), builder.info.splits[val_name].num_examples),
        class_names=builder.info.features["label"].names,
    )


def _normalize(images, mean, std):
    mean = tf.constant(np.asarray(mean, "float32") * 255.0)
    scale = tf.constant(1.0 / (np.asarray(std, "float32") * 255.0))
    return (tf.cast(images, tf.float32) - mean) * scale


def _random_resized_crop(image, size, min_crop, flip, seed):
    """Inception's crop: a random box of 8%-100% (here `min_crop`) of the area, aspect 3/4-4/3.

    Stateless, drawn from `seed` (a pair of integers): the same seed gives the same crop
    whichever thread of a parallel map computes it."""
    box_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=box_seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(min_crop, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, extent)
    crop.set_shape((None, None, 3))  # tf.slice forgets the channels
    crop = tf.image.resize(tf.cast(crop, tf.float32), (size, size), method="bilinear",
                           antialias=True)
    return tf.image.stateless_random_flip_left_right(crop, flip_seed) if flip else crop


def train_dataset(split, data, *, size, mean, std, global_batch, seed, epoch, randaugment=0,
                  randaugment_factor=0.5, mixup=0.0, cutmix=0.0, skip_batches=0):
    """One epoch of training batches, shuffled and augmented.

    Each image gets Inception's random-resized crop (Szegedy et al., "Going Deeper with
    Convolutions", CVPR 2015, https://arxiv.org/abs/1409.4842: a box of `data.min_crop` to
    all of the area, aspect 3/4 to 4/3, resized to `size`) and, where `data.flip`, a random
    horizontal flip; then, if asked, RandAugment (Cubuk et al., 2020,
    https://arxiv.org/abs/1909.13719) and, per batch, MixUp (Zhang et al., ICLR 2018,
    https://arxiv.org/abs/1710.09412) or CutMix (Yun et al., ICCV 2019,
    https://arxiv.org/abs/1905.04899), with Keras' layers.

    The order, the crops and flips, and MixUp / CutMix are fixed by `seed` and `epoch`, so a
    resumed epoch skips exactly the batches it had done (`skip_batches`) and goes on with
    the ones an uninterrupted run would have seen. RandAugment is the exception: Keras' layer
    draws from one generator across the parallel map, so its choices vary from run to run.

    Args:
        split: the training `Split`.
        data: its `Data` (classes, `flip`, `min_crop`).
        size: the output height and width.
        mean: the per-channel mean, for images in [0, 1].
        std: the per-channel standard deviation, for images in [0, 1].
        global_batch: images per batch (across all replicas); the last partial batch is
            dropped.
        seed: the run's seed.
        epoch: the epoch (0-based), drawn with the seed.
        randaugment: RandAugment operations per image; 0 turns it off.
        randaugment_factor: RandAugment's magnitude, in [0, 1].
        mixup: MixUp's alpha; 0 turns it off.
        cutmix: CutMix's factor; 0 turns it off. With both, each batch uses one at random.
        skip_batches: batches of the epoch already done (when resuming).

    Returns:
        A `tf.data.Dataset` of `(images, labels)`: float32 `(global_batch, size, size, 3)`
        images normalised as `(x / 255 - mean) / std`, and float32 one-hot (or, mixed,
        soft) labels `(global_batch, classes)`.

    Examples:
        >>> data = digits()
        >>> batches = train_dataset(data.train, data, size=32, mean=(0.485, 0.456, 0.406),
        ...                         std=(0.229, 0.224, 0.225), global_batch=64, seed=0, epoch=0)
        >>> images, labels = next(iter(batches))
        >>> images.shape, labels.shape
        (TensorShape([64, 32, 32, 3]), TensorShape([64, 10]))
    """
    epoch_seed = seed * 1_000_003 + epoch
    dataset = split.dataset.shuffle(min(split.size, 20_000), seed=epoch_seed,
                                    reshuffle_each_iteration=False)
    # Each image's crop is drawn from (epoch, its place in the epoch): the same in every run
    # with this seed, and in a resumed epoch as in an uninterrupted one.
    dataset = dataset.enumerate().map(
        lambda index, example: (
            _random_resized_crop(example[0], size, data.min_crop, data.flip,
                                 tf.stack([tf.constant(epoch_seed, tf.int64), index])),
            example[1],
        ),
        num_parallel_calls=AUTOTUNE,
    )
    if randaugment:
        augment = keras.layers.RandAugment(value_range=(0, 255), num_ops=randaugment,
                                           factor=randaugment_factor, seed=seed + epoch,
                                           dtype="float32")
        dataset = dataset.map(lambda image, label: (augment(image), label),
                              num_parallel_calls=AUTOTUNE)
    dataset = dataset.batch(global_batch, drop_remainder=True)
    dataset = dataset.map(
        lambda images, labels: (images, tf.one_hot(labels, data.num_classes)),
        num_parallel_calls=AUTOTUNE,
    )
    if mixup or cutmix:
        # In order: the mixers draw from Keras' seeded generators, whose draws a parallel map
        # would hand to the batches in whatever order its threads run (a batch is cheap to mix).
        dataset = dataset.map(_mixer(mixup, cutmix, seed + epoch))
    dataset = dataset.map(lambda images, labels: (_normalize(images, mean, std), labels),
                          num_parallel_calls=AUTOTUNE)
    return dataset.skip(skip_batches).prefetch(AUTOTUNE)


def _mixer(mixup, cutmix, seed):
    """MixUp and/or CutMix on a batch (Keras' layers); with both, one of them per batch.

    The data stays float32 whatever the global dtype policy (mixed precision is the model's).
    """
    layers = []
    if mixup:
        layers.append(keras.layers.MixUp(alpha=mixup, seed=seed, dtype="float32"))
    if cutmix:
        layers.append(keras.layers.CutMix(factor=cutmix, seed=seed, dtype="float32"))

    def mix(images, labels):
        batch = {"images": images, "labels": labels}
        if len(layers) == 1:
            mixed = layers[0](batch)
        else:
            mixed = tf.cond(tf.random.uniform(()) < 0.5, lambda: layers[0](batch),
                            lambda: layers[1](batch))
        return mixed["images"], mixed["labels"]

    return mix


def eval_dataset(split, data, *, size, mean, std, global_batch):
    """All of a split, resized and center-cropped, in global batches (the last one partial).

    Each image is resized (bilinear) and center-cropped to `size` with `data.crop_pct`
    (`keras_attn.data.resize_and_center_crop`), then normalised as in `train_dataset`.

    Args:
        split: the validation `Split`.
        data: its `Data` (classes, `crop_pct`).
        size: the output height and width.
        mean: the per-channel mean, for images in [0, 1].
        std: the per-channel standard deviation, for images in [0, 1].
        global_batch: images per batch (across all replicas).

    Returns:
        A `tf.data.Dataset` of `(images, labels)`: float32 `(batch, size, size, 3)` images and
        one-hot labels, every example once.

    Examples:
        >>> data = digits()
        >>> batches = eval_dataset(data.val, data, size=32, mean=(0.485, 0.456, 0.406),
        ...                        std=(0.229, 0.224, 0.225), global_batch=100)
        >>> [int(images.shape[0]) for images, _ in batches]
        [100, 100, 100, 59]
    """
    dataset = split.dataset.map(
        lambda image, label: (
            image_data.resize_and_center_crop(image, size, data.crop_pct, "bilinear"),
            tf.one_hot(label, data.num_classes),
        ),
        num_parallel_calls=AUTOTUNE,
    )
    dataset = dataset.batch(global_batch)
    dataset = dataset.map(lambda images, labels: (_normalize(images, mean, std), labels),
                          num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def steps_per_epoch(split, global_batch, limit=None):
    """Whole global batches in `split` (the last partial batch dropped), at most `limit`.

    Args:
        split: the training `Split`.
        global_batch: images per step, across all replicas.
        limit: the most steps (`--steps_per_epoch`); None or 0 for no limit.

    Returns:
        The number of steps per epoch, an int.

    Raises:
        ValueError: the split holds fewer images than one global batch.

    Examples:
        >>> data = digits()
        >>> steps_per_epoch(data.train, 64), steps_per_epoch(data.train, 64, limit=5)
        (22, 5)
    """
    steps = split.size // global_batch
    if steps == 0:
        raise ValueError(
            f"The training split has {split.size} images, fewer than one global batch of "
            f"{global_batch}: lower --batch_size."
        )
    return min(steps, limit) if limit else steps


def describe(data):
    """One line about the data, for the log.

    Args:
        data: a `Data`.

    Returns:
        The sizes of the splits and the number of classes, and of unreadable files skipped
        if any, as a string.

    Examples:
        >>> describe(digits())
        '1438 training and 359 validation images, 10 classes'
    """
    return (f"{data.train.size} training and {data.val.size} validation images, "
            f"{data.num_classes} classes" +
            (f", {len(data.skipped)} unreadable files skipped" if data.skipped else ""))
