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

AUTOTUNE = tf.data.AUTOTUNE
IMAGE_EXTENSIONS = image_data.IMAGE_EXTENSIONS


@dataclasses.dataclass
class Split:
    """Images as a `tf.data.Dataset` of `(uint8 (h, w, 3), int32 label)` and its size."""

    dataset: tf.data.Dataset
    size: int


@dataclasses.dataclass
class Data:
    """A dataset ready for training.

    Attributes:
        train, val: the splits.
        class_names: label -> name.
        image_size: the input size that suits the images (None: the network's default).
        flip: whether a horizontal flip keeps an image's label.
        min_crop: smallest area fraction that the random-resized crop keeps.
        crop_pct: center-crop fraction for evaluation (1.0: resize only).
        skipped: files that could not be decoded and were left out.
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
    """The data `--dataset` or `--data_dir` names (exactly one of them)."""
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
    """scikit-learn's 1,797 handwritten digits (bundled, no download), as 32x32 RGB images."""
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

    Files that do not decode are left out and listed in `Data.skipped`. An empty folder, a
    class without images, or a class present in one split but not the other is an error.
    """
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"--data_dir={data_dir!r} is not a folder.")
    val_root = os.path.join(data_dir, "val")
    train_root = os.path.join(data_dir, "train")
    if not os.path.isdir(train_root) or not os.path.isdir(val_root):
        train_root = data_dir
    train_files = _class_files(train_root)
    if not train_files:
        raise ValueError(
            f"--data_dir={data_dir!r} has no class folders: expected one sub-folder of images "
            "per class."
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
    """A TensorFlow Datasets classification dataset (its train and validation/test splits)."""
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
    """One epoch of training batches: the order, the crops and flips, and MixUp / CutMix are
    fixed by `seed` and `epoch`, so a resumed epoch skips exactly the batches it had done
    (`skip_batches`) and goes on with the ones an uninterrupted run would have seen. RandAugment
    is the exception: Keras' layer draws from one generator across the parallel map, so its
    choices vary from run to run."""
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
    """All of a split, resized and center-cropped, in global batches (the last one partial)."""
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
    steps = split.size // global_batch
    if steps == 0:
        raise ValueError(
            f"The training split has {split.size} images, fewer than one global batch of "
            f"{global_batch}: lower --batch_size."
        )
    return min(steps, limit) if limit else steps


def describe(data):
    """One line about the data, for the log."""
    return (f"{data.train.size} training and {data.val.size} validation images, "
            f"{data.num_classes} classes" +
            (f", {len(data.skipped)} unreadable files skipped" if data.skipped else ""))
