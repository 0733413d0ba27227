"""Training data: digits, image folders (and their errors), the augmentation pipelines."""

import dataclasses
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_attn.training import data as training_data


def _write_images(folder, count, size=(24, 20)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    for index in range(count):
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        encode = tf.io.encode_png if index % 2 else tf.io.encode_jpeg
        suffix = "png" if index % 2 else "jpg"
        tf.io.write_file(str(folder / f"{index}.{suffix}"), encode(pixels))


def test_digits_are_32x32_rgb_with_a_stratified_split():
    data = training_data.load_data("digits", val_split=0.2, seed=0)
    assert (data.train.size, data.val.size, data.num_classes) == (1438, 359, 10)
    images, labels = next(iter(data.val.dataset.batch(400)))
    assert images.shape == (359, 32, 32, 3) and images.dtype == tf.uint8
    counts = np.bincount(labels.numpy(), minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # ~20% of each class's ~180
    assert int(images.numpy().max()) == 255 and not data.flip


def test_image_folder_with_val_split_folder(tmp_path):
    for name in ("cat", "dog"):
        _write_images(tmp_path / "train" / name, 5)
        _write_images(tmp_path / "val" / name, 2)
    data = training_data.load_data(data_dir=str(tmp_path))
    assert (data.class_names, data.train.size, data.val.size) == (["cat", "dog"], 10, 4)
    image, label = next(iter(data.train.dataset))
    assert image.shape == (24, 20, 3) and int(label) == 0


def test_image_folder_with_train_folder_only_holds_out_val_split(tmp_path):
    for name in ("cat", "dog"):
        _write_images(tmp_path / "train" / name, 5)
    data = training_data.load_data(data_dir=str(tmp_path), val_split=0.2)
    assert (data.class_names, data.train.size, data.val.size) == (["cat", "dog"], 8, 2)


def test_unreadable_images_are_skipped_and_listed(tmp_path):
    for name in ("a", "b"):
        _write_images(tmp_path / name, 6)
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    data = training_data.load_data(data_dir=str(tmp_path), val_split=0.25)
    assert data.skipped == [str(tmp_path / "a" / "broken.jpg")]
    assert data.train.size + data.val.size == 12
    assert "1 unreadable files skipped" in training_data.describe(data)


@pytest.mark.parametrize(
    "layout, message",
    [
        ({}, "has no class folders"),
        ({"a": 3, "b": 0}, "These training class folders have no images: ['b']"),
        ({"a": 3, "b": 3, "val/a": 1}, "missing ['b']"),
        ({"a": 3, "val/a": 1, "val/c": 1}, "unknown ['c']"),
        # One image per class: --val_split holds each out, and training gets none.
        ({"a": 1, "b": 1}, "leaves no readable image for training (2 readable in all"),
    ],
)
def test_folder_errors_name_the_problem(tmp_path, layout, message):
    for folder, count in layout.items():
        (tmp_path / folder).mkdir(parents=True)
        _write_images(tmp_path / folder, count)
    with pytest.raises(ValueError, match=re.escape(message)):
        training_data.load_data(data_dir=str(tmp_path))


def test_a_val_folder_without_readable_images_is_named(tmp_path):
    for name in ("a", "b"):
        _write_images(tmp_path / "train" / name, 2)
        (tmp_path / "val" / name).mkdir(parents=True)
        (tmp_path / "val" / name / "0.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(ValueError, match=re.escape(
            f"leaves no readable image for validation (4 readable in all; no image under "
            f"{str(tmp_path / 'val')!r} decodes)")):
        training_data.load_data(data_dir=str(tmp_path))


def test_train_batches_are_the_same_in_every_run_and_after_a_resume():
    data = dataclasses.replace(training_data.load_data("digits"), flip=True)  # flips drawn too

    def batches(skip=0):
        return [images.numpy() for images, _ in training_data.train_dataset(
            data.train, data, size=28, mean=(0.5,) * 3, std=(0.5,) * 3, global_batch=64,
            seed=3, epoch=1, mixup=0.4, cutmix=1.0, skip_batches=skip).take(8 - skip)]

    first = batches()
    for again in (batches(), [None] * 3 + batches(skip=3)):
        for index, (ours, theirs) in enumerate(zip(first, again)):
            if theirs is not None:
                np.testing.assert_array_equal(ours, theirs, err_msg=f"batch {index}")


def test_train_batches_are_normalised_soft_labels_with_mixing():
    data = training_data.load_data("digits")
    batches = training_data.train_dataset(
        data.train, data, size=32, mean=(0.5,) * 3, std=(0.5,) * 3, global_batch=16, seed=0,
        epoch=0, mixup=0.4, cutmix=1.0, randaugment=2,
    )
    images, labels = next(iter(batches))
    assert images.shape == (16, 32, 32, 3) and labels.shape == (16, 10)
    assert -1.0 - 1e-6 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0001
    np.testing.assert_allclose(tf.reduce_sum(labels, axis=1).numpy(), 1.0, rtol=1e-5)
    assert (labels.numpy().max(axis=1) < 1 - 1e-6).any()  # some labels are mixtures


def test_an_epoch_is_the_same_order_when_resumed():
    data = training_data.load_data("digits")
    kwargs = dict(size=32, mean=(0.5,) * 3, std=(0.5,) * 3, global_batch=16, seed=3, epoch=2)
    whole = [labels.numpy() for _, labels in training_data.train_dataset(
        data.train, data, **kwargs).take(5)]
    resumed = [labels.numpy() for _, labels in training_data.train_dataset(
        data.train, data, skip_batches=3, **kwargs).take(2)]
    for expected, actual in zip(whole[3:], resumed):
        np.testing.assert_array_equal(actual, expected)


def test_eval_batches_cover_every_image_once():
    data = training_data.load_data("digits")
    batches = training_data.eval_dataset(data.val, data, size=32, mean=(0.5,) * 3,
                                         std=(0.5,) * 3, global_batch=64)
    sizes = [labels.shape[0] for _, labels in batches]
    assert sum(sizes) == 359 and sizes[-1] == 359 % 64


def _mock_tfds(data_dir, splits):
    """TFDS's mnist without a download: its real features, `splits` ({name: size}) written as
    its metadata, and random examples from `tensorflow_datasets.testing.mock_data`."""
    import tensorflow_datasets as tfds

    builder = tfds.builder("mnist", data_dir=str(data_dir))
    builder.info.set_splits(tfds.core.SplitDict([
        tfds.core.SplitInfo(name=name, shard_lengths=[size], num_bytes=0)
        for name, size in splits.items()]))
    builder.data_path.mkdir(parents=True)
    builder.info.write_to_directory(builder.data_dir)
    # Every split yields `num_examples` examples; the sizes above are what the info says.
    return tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_FILES,
                                  data_dir=str(data_dir))


@pytest.mark.parametrize("splits, val_size", [
    ({"train": 12, "test": 7}, 7),
    ({"train": 12, "validation": 5, "test": 7}, 5),
], ids=["test_split", "validation_split"])
def test_a_tfds_dataset_gives_rgb_images_its_labels_and_class_names(tmp_path, splits,
                                                                   val_size):
    import tensorflow_datasets as tfds

    with _mock_tfds(tmp_path, splits):
        data = training_data.load_data("mnist")
        raw = list(tfds.load("mnist", split="train", as_supervised=True).as_numpy_iterator())
        train = list(data.train.dataset.as_numpy_iterator())
        val = list(data.val.dataset.as_numpy_iterator())
    # The validation split is "validation" where the dataset has one, else "test".
    assert (data.train.size, data.val.size) == (12, val_size)
    assert data.class_names == [str(digit) for digit in range(10)]
    assert len(train) == len(raw) == len(val) == 12
    for (image, label), (gray, raw_label) in zip(train, raw):
        assert image.dtype == np.uint8 and label.dtype == np.int32
        np.testing.assert_array_equal(image, np.repeat(gray, 3, axis=-1))  # gray -> RGB
        assert label == raw_label


def test_training_runs_on_a_tfds_dataset(tmp_path, training_flags):
    from keras_attn.training import train

    with _mock_tfds(tmp_path / "tfds", {"train": 12, "test": 12}):
        summary = train.run(training_flags("--dataset=mnist", "--batch_size=4",
                                           "--steps_per_epoch=2"))
    assert summary["epochs"] == 1 and summary["model"].output_shape == (None, 10)
    assert (tmp_path / "run" / "last.weights.h5").exists()


def test_a_tfds_name_without_tensorflow_datasets_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # as if not installed
    with pytest.raises(ImportError, match=re.escape(
            "--dataset='mnist' is read with tensorflow-datasets: pip install "
            "tensorflow-datasets. Without it, use --dataset=digits or --data_dir.")):
        training_data.load_data("mnist")


def test_an_unknown_dataset_name_is_named(tmp_path):
    with pytest.raises(ValueError, match=re.escape(
            "--dataset='no_such_dataset' is neither 'digits' nor a TensorFlow Datasets name")):
        training_data.load_data("no_such_dataset")
