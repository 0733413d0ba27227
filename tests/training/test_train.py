"""The training program end to end: outputs, options, fine-tuning, errors."""

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from safetensors.numpy import save_file

from keras_attn import testing
from keras_attn.applications import get_model, preprocess_input
from keras_attn.convert import timm as timm_convert
from keras_attn.training import train
from keras_attn.training.flags import define_flags
from tests.training.conftest import QUICK


def _flags(model_dir, *args):
    """QUICK's flags, `--model_dir=model_dir`, then `args` (the training_flags fixture's, for
    module fixtures)."""
    values = flags.FlagValues()
    define_flags(values)
    values(["train", *QUICK, f"--model_dir={model_dir}", *args])
    return values


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished run of 2 epochs that the tests below only read: its folder (run/, with
    the export in serving/), its summary and what it printed. A warm-up of one epoch then a
    cosine to zero (the learning-rate test), a backup after every step (mid-epoch and epoch
    end)."""
    folder = tmp_path_factory.mktemp("finished")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        summary = train.run(_flags(folder / "run", "--epochs=2", "--backup_steps=1",
                                   "--warmup_epochs=1", "--lr=0.2",
                                   f"--export_dir={folder / 'serving'}"))
    return folder, summary, printed.getvalue()


def test_run_writes_every_output(finished_run):
    folder, summary, output = finished_run
    run = folder / "run"
    assert sorted(os.listdir(run)) == ["backup", "best.weights.h5", "config.json",
                                       "last.weights.h5", "logs", "metrics.csv", "metrics.png"]
    assert json.loads((run / "config.json").read_text())["model"] == "seresnet20_cifar"
    with open(run / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert set(rows[0]) >= {"loss", "accuracy", "val_loss", "val_accuracy", "val_top5",
                            "learning_rate"}
    assert (run / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(name.startswith("events.out.tfevents") for _, _, names in os.walk(run / "logs")
               for name in names)
    assert (run / "backup" / "latest").read_text().startswith("state-00002-0000000-")
    assert summary["epochs"] == 2 and summary["images_per_second"] > 0
    assert re.search(r"Done: best validation top-1 0\.\d{4} at epoch [12]; 2 epochs, \d+ s, "
                     r"[\d.]+ images/s", output)
    # The checkpoint loads into the registry's network with the same classes.
    model = get_model("seresnet20_cifar", weights=str(run / "best.weights.h5"), classes=10)
    assert model.count_params() == summary["model"].count_params()
    # --export_dir: the best weights, for TF Serving, with the dataset's class names.
    assert os.listdir(folder / "serving") == ["1"]
    assert summary["export"].max_abs_error <= 1e-5
    served = tf.saved_model.load(str(folder / "serving" / "1"))
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    probabilities = served.signatures["serving_default"](images=tf.constant(pixels))
    expected = model.predict(preprocess_input(pixels, model="seresnet20_cifar"), verbose=0)
    np.testing.assert_allclose(probabilities["probabilities"].numpy(), expected, atol=1e-5)
    encoded = tf.io.encode_png(pixels[0].astype("uint8"))
    labels = served.signatures["serving_bytes"](images=encoded[None])["labels"].numpy()[0]
    assert len(labels) == 5 and {label.decode() for label in labels} <= set("0123456789")


def test_learning_rate_warms_up_then_decays_to_zero(finished_run):
    rates = [row["learning_rate"] for row in finished_run[1]["history"]]
    assert rates[0] == pytest.approx(0.2, rel=1e-6)  # the end of the warm-up
    assert rates[1] == pytest.approx(0.0, abs=1e-7)  # the end of the cosine


def test_mirrored_strategy_override_trains(training_flags, mirrored_strategy, tmp_path):
    summary = train.run(training_flags("--sync_bn"), strategy_override=mirrored_strategy)
    assert summary["epochs"] == 1
    with pytest.raises(ValueError, match="--batch_size=33 must be a multiple of the 2 replicas"):
        train.run(training_flags("--batch_size=33"), strategy_override=mirrored_strategy)
    # Synchronised statistics all-reduce in a cross-replica context, which XLA's per-replica
    # function cannot enter: refused before anything is built, not a RuntimeError mid-trace.
    with pytest.raises(ValueError, match="--sync_bn and --jit_compile cannot be combined with "
                                         "2 replicas"):
        train.run(training_flags("--sync_bn", "--jit_compile",
                                 model_dir=str(tmp_path / "jit")),
                  strategy_override=mirrored_strategy)
    assert not os.path.exists(tmp_path / "jit")


def test_freeze_backbone_fine_tunes_only_the_head_of_a_converted_checkpoint(training_flags,
                                                                            tmp_path):
    source = get_model("seresnet20_cifar", classes=10)
    testing.perturb_batch_norm_statistics(source)
    checkpoint = str(tmp_path / "pretrained.safetensors")
    save_file(timm_convert.timm_state_dict(source), checkpoint)
    summary = train.run(training_flags(f"--weights={checkpoint}", "--freeze_backbone",
                                       "--lr=0.5"))
    tuned = summary["model"]
    for layer in tuned.layers:
        for before, after in zip(source.get_layer(layer.name).weights, layer.weights):
            changed = not np.array_equal(keras.ops.convert_to_numpy(before),
                                         keras.ops.convert_to_numpy(after))
            assert changed == (layer.name == "predictions"), after.path


def test_divergence_names_the_step(training_flags):
    with pytest.raises(FloatingPointError,
                       match=r"Training diverged: the loss is (nan|inf) at epoch 1, step \d+"):
        train.run(training_flags("--lr=1e12", "--steps_per_epoch=6", "--label_smoothing=0"))


def test_resume_refuses_a_changed_run_and_noresume_never_overwrites(finished_run):
    run = finished_run[0] / "run"

    def contents():
        return {path: path.read_bytes() for path in sorted(run.rglob("*")) if path.is_file()}

    before = contents()
    # The finished run's state flags (module fixture), then the changed one: the last wins.
    same = ("--epochs=2", "--warmup_epochs=1", "--lr=0.2")
    with pytest.raises(ValueError, match="holds a backup of an earlier run; pass --resume"):
        train.run(_flags(run, *same, "--noresume"))
    with pytest.raises(ValueError, match=r"--optimizer was 'sgd', now 'adamw'"):
        train.run(_flags(run, *same, "--optimizer=adamw"))
    # The split, the data order, the batch and the schedule the restored step counts in.
    for changed, message in (("--seed=1", "--seed was 0, now 1"),
                             ("--batch_size=64", "--batch_size was 32, now 64"),
                             ("--epochs=3", "--epochs was 2, now 3"),
                             ("--lr=0.5", "--lr was 0.2, now 0.5")):
        with pytest.raises(ValueError, match=re.escape(message)):
            train.run(_flags(run, *same, changed))
    assert contents() == before  # nothing written, nothing removed


# Every training option at once, on the run the next two tests read.
OPTIONS = ("--optimizer=adamw", "--lr=0.001", "--mixup=0.2", "--cutmix=1.0", "--randaugment=2",
           "--ema=0.9", "--label_smoothing=0.1", "--mixed_precision", "--scale_lr")


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory):
    """A run of one epoch with OPTIONS, killed right after its end-of-epoch backup (before the
    epoch-end callbacks), then run again: its folder, the backup pointer and the files the
    killed run left, the resumed run's summary, and the dtype policy after it."""
    run = tmp_path_factory.mktemp("killed") / "run"

    def killed(self, epoch, logs=None):
        raise SystemExit(137)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.callbacks.CallbackList, "on_epoch_end", killed)
        with pytest.raises(SystemExit):
            train.run(_flags(run, *OPTIONS))
    latest, left = (run / "backup" / "latest").read_text(), sorted(os.listdir(run))
    summary = train.run(_flags(run, *OPTIONS))
    return run, latest, left, summary, keras.config.dtype_policy().name


def test_options_run_together(killed_then_resumed):
    summary, policy = killed_then_resumed[3:]
    assert summary["model"].get_layer("stage1_block1_conv1").compute_dtype == "bfloat16"
    assert policy == "float32"  # restored after the run
    assert all(np.isfinite(w).all() for w in summary["model"].get_weights())


def test_a_run_killed_right_after_its_epoch_backup_writes_that_epochs_outputs_on_resume(
        killed_then_resumed):
    # The end-of-epoch backup comes before the epoch-end callbacks (checkpoints, CSV): a kill
    # between the two used to leave an epoch that resumed runs skipped, with no best, last
    # or metrics file ever written for it. One epoch: every output file below can only come
    # from the resumed run's rewrite of the killed epoch's outputs (no later epoch writes it).
    # With --ema (the rewrite swaps the averaged weights in first), which covers the plain
    # run's rewrite too: the same Checkpoints and MetricsLog calls, less the swap.
    run, latest, left, summary, _ = killed_then_resumed
    assert latest.startswith("state-00001-0000000-")
    assert "last.weights.h5" not in left and "metrics.csv" not in left
    with open(run / "metrics.csv") as file:
        assert [row["epoch"] for row in csv.DictReader(file)] == ["1"]
    assert summary["best"]["epoch"] == 1 and (run / "best.weights.h5").exists()
    model = summary["model"]
    last = get_model("seresnet20_cifar", classes=10, weights=str(run / "last.weights.h5"))
    for ours, theirs in zip(last.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    # The checkpoints hold the EMA weights: the model's trainable variables are the optimizer's
    # moving averages (had the rewrite not swapped them in, they would be the training weights,
    # which after 2 steps are not the averages).
    optimizer = model.optimizer
    for variable, average in zip(optimizer._trainable_variables,
                                 optimizer._model_variables_moving_average):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable),
                                      keras.ops.convert_to_numpy(average), err_msg=variable.path)


def test_a_backup_removes_what_killed_saves_left(tmp_path):
    from keras_attn.training.callbacks import TrainingBackup

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    backup = TrainingBackup(str(tmp_path / "backup"), model)
    backup.save(0, 4, [], {})
    current = (tmp_path / "backup" / "latest").read_text()
    # A SIGKILL mid-save leaves a scratch folder; one between the rename and the pointer, an
    # unreferenced backup.
    for leftover in (".state-00000-0000005-1234abcd.part", "state-00000-0000005-1234abcd"):
        (tmp_path / "backup" / leftover).mkdir()
        (tmp_path / "backup" / leftover / "state.weights.h5").write_bytes(b"partial")
    assert backup.restore()["step"] == 4
    backup.save(0, 6, [], {})
    latest = (tmp_path / "backup" / "latest").read_text()
    assert latest != current and latest.startswith("state-00000-0000006-")
    assert sorted(os.listdir(tmp_path / "backup")) == ["latest", latest]


def test_a_bad_tf_config_is_named(monkeypatch):
    from keras_attn.training import strategy

    monkeypatch.setenv("TF_CONFIG", "{bad")
    for name in ("auto", "multi_worker"):
        with pytest.raises(ValueError, match=re.escape("TF_CONFIG is not valid JSON")):
            strategy.make_strategy(name)
    monkeypatch.setenv("TF_CONFIG", "[1]")
    with pytest.raises(ValueError, match=re.escape("TF_CONFIG must be a JSON object")):
        strategy.make_strategy("auto")


@pytest.mark.parametrize(
    "args, error, message",
    [
        (["--model=resnet51"], ValueError, "Unknown model name 'resnet51'"),
        (["--data_dir=/nonexistent"], ValueError,  # beside QUICK's --dataset
         "Give exactly one of --dataset (e.g. --dataset=digits) and --data_dir; received "
         "dataset='digits', data_dir='/nonexistent'."),
        (["--val_split=1.5"], ValueError, "--val_split must be in"),
        (["--batch_size=4096"], ValueError, "fewer than one global batch of 4096"),
        (["--dataset=no_such_tfds_name"], ValueError,
         "--dataset='no_such_tfds_name' is neither 'digits' nor a TensorFlow Datasets name"),
        (["--steps_per_epoch=0"], ValueError, "`--steps_per_epoch` must be an integer >= 1"),
        (["--image_size=0"], ValueError, "`--image_size` must be an integer >= 1"),
        (["--randaugment=-2"], ValueError, "`--randaugment` must be an integer >= 0"),
        (["--lr=0"], ValueError, "--lr must be > 0; received 0.0."),
        (["--mixup=-1"], ValueError, "--mixup must be >= 0; received -1.0."),
        (["--cutmix=nan"], ValueError, "--cutmix must be >= 0; received nan."),
        (["--warmup_epochs=-1"], ValueError, "--warmup_epochs must be >= 0"),
        (["--label_smoothing=1"], ValueError, "--label_smoothing must be in [0, 1)"),
        (["--randaugment_factor=1.5"], ValueError, "--randaugment_factor must be in [0, 1]"),
        (["--ema=1"], ValueError, "--ema must be in [0, 1); received 1.0."),
        (["--weights=missing.weights.h5"], ValueError,
         "`weights` file not found: 'missing.weights.h5'"),
        ([f"--export_dir={os.path.abspath(__file__)}/serving"], ValueError,
         f"cannot be a folder: {os.path.abspath(__file__)!r} is a file."),
    ],
)
def test_bad_flags_are_named(training_flags, tmp_path, args, error, message):
    with pytest.raises(error, match=re.escape(message)):
        train.run(training_flags(*args))
    assert not os.path.exists(tmp_path / "run")  # refused before --model_dir is made


@pytest.mark.parametrize("args, error, message", [
    (["--data_dir=/nonexistent"], FileNotFoundError, "--data_dir='/nonexistent' is not a folder."),
    ([], ValueError, "Give exactly one of --dataset (e.g. --dataset=digits) and --data_dir; "
                     "received dataset=None, data_dir=None."),
])
def test_bad_data_flags_without_a_dataset_are_named(training_flags, tmp_path, args, error,
                                                    message):
    with pytest.raises(error, match=re.escape(message)):
        train.run(training_flags(*args, without=("dataset",)))
    assert not os.path.exists(tmp_path / "run")


def test_the_program_prints_a_bad_flag_in_one_line(tmp_path):
    model_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "keras_attn.training", "--dataset=digits",
         "--model=seresnet20_cifar", "--epochs=-1", f"--model_dir={model_dir}"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].endswith(
        "error: `--epochs` must be an integer >= 1; received --epochs=-1.")
    assert "Traceback" not in result.stderr
    assert not model_dir.exists()


@pytest.mark.parametrize("num_classes, keeps_classifier", [(11821, True), (1000, False)])
def test_a_tags_classifier_is_kept_when_the_data_has_its_classes(monkeypatch, num_classes,
                                                                 keeps_classifier):
    # resnetaa50d's sw_in12k classifies ImageNet-12k's 11821 classes: data of 11821 classes
    # keeps it; data of 1000 gets a new head on the backbone, as any other class count.
    calls = []

    def narrow(name, weights=None, **kwargs):
        calls.append(dict(kwargs, weights=weights))
        return get_model(name, widths=(8, 16, 32, 64), depths=(1, 1, 1, 1), stem_width=8,
                         **kwargs)

    monkeypatch.setattr(train, "get_model", narrow)
    model = train._build_model({"model": "resnetaa50d", "freeze_backbone": False}, "sw_in12k",
                               num_classes, 64)
    assert model.output_shape == (None, num_classes)
    assert (calls[0].get("include_top", True), calls[0]["weights"]) == (keeps_classifier,
                                                                        "sw_in12k")
