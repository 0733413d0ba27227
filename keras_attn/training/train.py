"""`keras-attn train`: train or fine-tune a keras_attn network on tf.distribute.

    keras-attn train --dataset=digits --model=seresnet20_cifar --model_dir=runs/digits

`run(flags, strategy_override=None)` does the work (tests and notebooks call it with their
own flag values and strategy); `main` is the absl entry point.
"""

import json
import math
import os
import shutil
import sys
import time

import keras
from absl import app, flags

from keras_attn import weights as published
from keras_attn.applications import application, get_model, registry, specs
from keras_attn.applications.imagenet_utils import mean_and_std
from keras_attn.layers import checks
from keras_attn.layers.precision import gate_dtype_policy
from keras_attn.training import callbacks as outputs
from keras_attn.training import data as training_data
from keras_attn.training import strategy as distribute
from keras_attn.training.flags import define_flags
from keras_attn.training.loop import DistributedLoop

__all__ = [
    "entry_point", "flag_names", "main", "run", "TrainingRun",
]

# Flags that change the shape or meaning of the saved state, or that the restored epoch, step
# and optimizer iterations count in (the data split and order, the batch, the learning-rate
# schedule): a resumed run must keep them.
_STATE_FLAGS = ("model", "weights", "dataset", "data_dir", "optimizer", "ema", "image_size",
                "freeze_backbone", "seed", "val_split", "batch_size", "steps_per_epoch",
                "epochs", "lr", "scale_lr", "warmup_epochs")


def flag_names():
    """The names of the training program's flags, in definition order.

    Read from a scratch `FlagValues`, so absl's global `FLAGS` is left alone; `run` takes
    exactly these attributes of its flag values.

    Returns:
        A list of flag names (without the `--`).

    Examples:
        >>> names = flag_names()
        >>> names[:4], "model_dir" in names
        (['model', 'weights', 'freeze_backbone', 'dataset'], True)
    """
    scratch = flags.FlagValues()
    define_flags(scratch)
    return list(scratch)


def run(flag_values, strategy_override=None):
    """Trains `--model` on the data the flags name; returns a summary dict.

    The flags are checked first (a bad value fails before anything is built or written);
    then a `TrainingRun` sets up the strategy, data, model and outputs in `--model_dir`,
    resumes from its backup if there is one, and trains. The global Keras dtype policy is
    restored afterwards (`--mixed_precision` changes it).

    Args:
        flag_values: parsed flags (absl `FLAGS`, or any object with the flags as attributes).
        strategy_override: a `tf.distribute.Strategy` to use instead of `--strategy`.

    Returns:
        `{"model": the trained model, "history": [per-epoch logs], "best": {"val_accuracy",
        "epoch"}, "epochs": ..., "seconds": ..., "images_per_second": ..., "skipped": [files],
        "export": the `ExportReport` of --export_dir or None}`.

    Raises:
        ValueError: a missing or unknown `--model`, no `--model_dir`, a value out of its
            range, a `--batch_size` that the replicas do not divide or that exceeds the
            training images, `--sync_bn` with `--jit_compile` on several replicas, a backup
            that `--noresume` would overwrite or that was taken with other state flags, or
            bad data (see `keras_attn.training.data.load_data`).
        FileNotFoundError: `--data_dir` is not a folder.
        ImportError: the data needs scikit-learn or tensorflow-datasets, not installed.
        OSError: the published `--weights` cannot be downloaded.
        FloatingPointError: the loss became NaN or infinite (the message names the step).

    Examples:
        >>> from absl import flags
        >>> from keras_attn.training.flags import define_flags
        >>> flag_values = flags.FlagValues()
        >>> define_flags(flag_values)
        >>> _ = flag_values(["train", "--model=seresnet20_cifar", "--dataset=digits",
        ...                  "--model_dir=runs/digits", "--lr=0"])
        >>> run(flag_values)
        Traceback (most recent call last):
        ...
        ValueError: --lr must be > 0; received 0.0.

        With good flags it trains (here two epochs on the digits):

        ```python
        _ = flag_values(["train", "--model=seresnet20_cifar", "--dataset=digits",
                         "--model_dir=runs/digits", "--epochs=2"])
        summary = run(flag_values)
        summary["best"]             # {"val_accuracy": ..., "epoch": ...}
        ```
    """
    config = {name: getattr(flag_values, name) for name in flag_names()}
    _check_flags(config)
    policy = keras.config.dtype_policy()
    try:
        return _run(config, strategy_override)
    finally:
        keras.config.set_dtype_policy(policy)


# The float flags' ranges: flag -> (whether a value is allowed, what the error says it must be).
_FLAG_RANGES = {
    "lr": (lambda value: value > 0, "> 0"),
    "val_split": (lambda value: 0 < value < 1, "in (0, 1)"),
    "warmup_epochs": (lambda value: value >= 0, ">= 0"),
    "weight_decay": (lambda value: value >= 0, ">= 0"),
    "label_smoothing": (lambda value: 0 <= value < 1, "in [0, 1)"),
    "mixup": (lambda value: value >= 0, ">= 0"),
    "cutmix": (lambda value: value >= 0, ">= 0"),
    "randaugment_factor": (lambda value: 0 <= value <= 1, "in [0, 1]"),
    "ema": (lambda value: 0 <= value < 1, "in [0, 1)"),
}


def _check_flags(config):
    if not config["model"]:
        raise ValueError("--model is required: a registry name (keras-attn models lists them).")
    specs.get_spec(config["model"])
    if not config["model_dir"]:
        raise ValueError("--model_dir is required: where the run writes its outputs.")
    for name in ("batch_size", "epochs", "backup_steps"):
        checks.check_positive_int(f"--{name}", config[name])
    for name in ("steps_per_epoch", "image_size"):
        if config[name] is not None:
            checks.check_positive_int(f"--{name}", config[name])
    checks.check_positive_int("--randaugment", config["randaugment"], minimum=0)
    for name, (allowed, expected) in _FLAG_RANGES.items():
        if not allowed(config[name]):  # NaN is allowed by none
            raise ValueError(f"--{name} must be {expected}; received {config[name]!r}.")
    if config["export_dir"]:
        # Checked before training, not when the export runs after the last epoch.
        from keras_attn.export.saved_model_export import check_base_dir

        check_base_dir(config["export_dir"], name="--export_dir")


def _run(config, strategy_override):
    training = TrainingRun(config, strategy_override)
    try:
        return training.train()
    finally:
        training.close()


class TrainingRun:
    """One run of the program: `__init__` sets everything up (strategy, data, model in the
    strategy's scope, restored backup, callbacks); `train()` runs the epochs from where the
    backup left off; `close()` removes a non-chief worker's scratch folders.

    `run` checks the flags and then uses this; it is public for programs that want the
    model, data or callbacks before training. `__init__` does not check the flags' ranges.

    Args:
        config: `{flag name: value}` for every name of `flag_names()`.
        strategy_override: a `tf.distribute.Strategy` to use instead of `--strategy`.

    Raises:
        ValueError: a `--batch_size` the replicas do not divide, `--sync_bn` with
            `--jit_compile` on several replicas, fewer images than one batch, a backup
            that `--noresume` would overwrite or that was taken with other state flags, and
            what loading the data and the weights raises.

    Examples:
        ```python
        config = {name: getattr(flag_values, name) for name in flag_names()}
        training = TrainingRun(config)
        training.model.summary()
        try:
            summary = training.train()
        finally:
            training.close()
        ```
    """

    def __init__(self, config, strategy_override=None):
        self.config = config
        keras.utils.set_random_seed(config["seed"])
        self.strategy = strategy_override or distribute.make_strategy(config["strategy"],
                                                                      config["tpu"])
        self.chief = distribute.is_chief(self.strategy)
        worker = distribute.worker_id(self.strategy)
        if config["mixed_precision"]:
            keras.config.set_dtype_policy(distribute.mixed_precision_policy(self.strategy))

        self.data = training_data.load_data(config["dataset"], config["data_dir"],
                                            config["val_split"], config["seed"])
        self.size = (config["image_size"] or self.data.image_size
                     or specs.get_spec(config["model"]).default_size)
        weights = None if config["weights"] in (None, "", "none") else config["weights"]
        # A published tag's preprocessing is the manifest's; otherwise the network's own.
        self.published = registry.published_tag(weights)
        self.mean, self.std = mean_and_std(config["model"], self.published)
        self.global_batch = config["batch_size"]
        replicas = self.strategy.num_replicas_in_sync
        if self.global_batch % replicas:
            raise ValueError(
                f"--batch_size={self.global_batch} must be a multiple of the {replicas} "
                "replicas."
            )
        if config["sync_bn"] and config["jit_compile"] and replicas > 1:
            # The replicas' BatchNorm statistics are all-reduced in a cross-replica context,
            # which the per-replica XLA function of --jit_compile cannot enter.
            raise ValueError(
                f"--sync_bn and --jit_compile cannot be combined with {replicas} replicas; "
                "drop one of them."
            )
        self.steps = training_data.steps_per_epoch(self.data.train, self.global_batch,
                                                   config["steps_per_epoch"])
        # Made once the data, weights and batch are known to fit: a run refused for its input
        # leaves no empty --model_dir behind.
        model_dir = config["model_dir"]
        os.makedirs(model_dir, exist_ok=True)
        _check_resume(config, model_dir)
        lr = config["lr"] * (self.global_batch / 256 if config["scale_lr"] else 1.0)

        with self.strategy.scope():
            self.model = _build_model(config, weights, self.data.num_classes, self.size)
            if config["sync_bn"]:
                distribute.synchronize_batch_norm(self.model)
            smoothing = config["label_smoothing"]
            self.model.compile(
                optimizer=_optimizer(config, lr, self.steps, self.steps * config["epochs"]),
                loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                          label_smoothing=smoothing),
            )
            self.model.optimizer.build(self.model.trainable_variables)
            self.loop = DistributedLoop(
                self.strategy, self.model,
                loss=keras.losses.CategoricalCrossentropy(
                    from_logits=True, label_smoothing=smoothing, reduction=None),
                eval_loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                               reduction=None),
                global_batch_size=self.global_batch, jit_compile=config["jit_compile"],
            )

        self.backup = outputs.TrainingBackup(os.path.join(model_dir, "backup"), self.model,
                                             self.chief, worker)
        state = self.backup.restore() if config["resume"] else None
        self.start_epoch, self.start_step = (state["epoch"], state["step"]) if state else (0, 0)
        self.history = state["history"] if state else []
        # Backups written before the sums were kept have none: the epoch then counts only
        # the steps after the resume.
        self.epoch_totals = tuple((state or {}).get("epoch_totals") or (0.0, 0.0, 0.0))
        self.best = state["best"] if state else {}
        if self.chief:
            outputs.write_atomically(os.path.join(model_dir, "config.json"),
                                     json.dumps(config, indent=1))
        # TensorBoard logs are the chief's; another worker writes to a scratch folder.
        self.logs_dir = os.path.join(model_dir, "logs" if self.chief else f".worker-{worker}-logs")
        self.callbacks = _callbacks(config, self.model, self.logs_dir, self.history, self.best,
                                    self.chief, worker, self.steps)
        print(f"{config['model']}: {self.model.count_params():,} parameters, {replicas} "
              f"replica(s) on {distribute.device_kind(self.strategy)}; "
              f"{training_data.describe(self.data)}; global batch {self.global_batch}, "
              f"{self.steps} steps per epoch.", flush=True)
        if state:
            print(f"Resuming from the backup in {self.backup.backup_dir}: epoch "
                  f"{self.start_epoch + 1}, step {self.start_step} of {self.steps}.", flush=True)

    def close(self):
        """Removes a non-chief worker's scratch TensorBoard folder (the chief's logs stay)."""
        if not self.chief:
            shutil.rmtree(self.logs_dir, ignore_errors=True)

    def _epoch_batches(self, epoch, skip):
        config = self.config
        batches = training_data.train_dataset(
            self.data.train, self.data, size=self.size, mean=self.mean, std=self.std,
            global_batch=self.global_batch, seed=config["seed"], epoch=epoch,
            randaugment=config["randaugment"], randaugment_factor=config["randaugment_factor"],
            mixup=config["mixup"], cutmix=config["cutmix"], skip_batches=skip,
        ).take(self.steps - skip)
        return iter(self.strategy.experimental_distribute_dataset(batches))

    def train(self):
        """Runs the remaining epochs; returns the summary `run` returns.

        Raises:
            FloatingPointError: the loss became NaN or infinite.
        """
        config, steps, callbacks = self.config, self.steps, self.callbacks
        val_batches = self.strategy.experimental_distribute_dataset(training_data.eval_dataset(
            self.data.val, self.data, size=self.size, mean=self.mean, std=self.std,
            global_batch=self.global_batch))
        started = time.time()
        images_seen, train_seconds = 0, 0.0
        callbacks.on_train_begin()
        if self.start_step == 0 and self.history:
            self._rewrite_epoch_outputs(self.start_epoch - 1, self.history[-1])
        for epoch in range(self.start_epoch, config["epochs"]):
            first_step = self.start_step if epoch == self.start_epoch else 0
            iterator = self._epoch_batches(epoch, first_step)
            callbacks.on_epoch_begin(epoch)
            epoch_started = time.time()
            # A resumed epoch goes on from the sums of the steps it had done, so that its
            # logged loss and accuracy are those of the whole epoch, as in a run never stopped.
            loss_sum, correct, count = (self.epoch_totals if epoch == self.start_epoch
                                        else (0.0, 0.0, 0.0))
            resumed_count = count
            for step in range(first_step, steps):
                callbacks.on_train_batch_begin(step)
                batch_loss, batch_correct, batch_count = self.loop.train_step(iterator)
                if not math.isfinite(batch_loss):
                    raise FloatingPointError(
                        f"Training diverged: the loss is {batch_loss} at epoch {epoch + 1}, "
                        f"step {step + 1} (global step {epoch * steps + step + 1}). Lower "
                        "--lr, or check the data."
                    )
                loss_sum += batch_loss
                correct += batch_correct
                count += batch_count
                callbacks.on_train_batch_end(step, {"loss": loss_sum / count,
                                                    "accuracy": correct / count})
                if (step + 1) % config["backup_steps"] == 0 and step + 1 < steps:
                    self.backup.save(epoch, step + 1, self.history, self.best,
                                     (loss_sum, correct, count))
            train_seconds += time.time() - epoch_started
            images_seen += count - resumed_count
            callbacks.on_test_begin()  # with EMA, validation uses the average
            logs = {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1),
                    **self.loop.evaluate(val_batches),
                    "learning_rate": float(keras.ops.convert_to_numpy(
                        self.model.optimizer.learning_rate))}
            callbacks.on_test_end()
            self.history.append({"epoch": epoch + 1, **logs,
                                 "seconds": round(time.time() - epoch_started, 2)})
            if logs["val_accuracy"] > self.best.get("val_accuracy", -1.0):
                self.best.update({"val_accuracy": logs["val_accuracy"], "epoch": epoch + 1})
            self.backup.save(epoch + 1, 0, self.history, self.best)
            callbacks.on_epoch_end(epoch, logs)
        callbacks.on_train_end()
        exported = self._export() if config["export_dir"] and self.chief else None
        summary = {
            "model": self.model,
            "history": self.history,
            "best": self.best,
            "epochs": len(self.history),
            "seconds": round(time.time() - started, 1),
            "images_per_second": round(images_seen / train_seconds, 1) if train_seconds else None,
            "skipped": self.data.skipped,
            "export": exported,
        }
        _report(config, summary, self.data)
        return summary


    def _rewrite_epoch_outputs(self, epoch, logs):
        """Writes the checkpoints and metrics of the finished epoch the backup was taken at.

        That backup is saved before the epoch-end callbacks (it must hold the training weights,
        not the EMA they swap in), so a run killed between the two resumes past an epoch whose
        outputs were never written."""
        kinds = (keras.callbacks.SwapEMAWeights, outputs.Checkpoints, outputs.MetricsLog)
        for callback in self.callbacks.callbacks:
            if isinstance(callback, kinds):
                callback.on_epoch_end(epoch, logs)

    def _export(self):
        """Exports the best checkpoint (a copy of the model: the returned one keeps the last
        weights) for TF Serving; returns the `ExportReport`."""
        from keras_attn import export

        model = keras.models.clone_model(self.model)
        model.load_weights(os.path.join(self.config["model_dir"], "best.weights.h5"))
        report = export.saved_model(model, self.config["export_dir"], weights=self.published,
                                    labels=self.data.class_names)
        print(f"Exported the best weights: {report}", flush=True)
        return report


def _check_resume(config, model_dir):
    saved_config = os.path.join(model_dir, "config.json")
    has_backup = os.path.exists(os.path.join(model_dir, "backup", "latest"))
    if has_backup and not config["resume"]:
        raise ValueError(
            f"--model_dir={model_dir!r} holds a backup of an earlier run; pass --resume to "
            "continue it, or choose another --model_dir (--noresume never overwrites it)."
        )
    if has_backup and os.path.exists(saved_config):
        with open(saved_config) as file:
            previous = json.load(file)
        changed = [name for name in _STATE_FLAGS if previous.get(name) != config[name]]
        if changed:
            raise ValueError(
                f"Cannot resume the run in {model_dir!r}: "
                + ", ".join(f"--{n} was {previous.get(n)!r}, now {config[n]!r}" for n in changed)
                + ". A backup continues the run it was taken of; start another --model_dir "
                "to change these."
            )


def _build_model(config, weights, num_classes, size):
    """The network with a `num_classes`-way classifier returning logits, named
    `predictions` in every case so its weights load into `get_model(name, classes=...)`."""
    name = config["model"]
    tag = registry.published_tag(weights)
    # The classifier of the weights is kept when the data has its classes: 1000, or a tag's.
    classes = 1000 if tag is None else published.num_classes(
        name, published.resolve_tag(name, tag))
    if weights is None or num_classes == classes:
        model = get_model(name, weights=weights, input_shape=(size, size, 3),
                          classes=num_classes, classifier_activation=None)
    else:
        backbone = get_model(name, weights=weights, include_top=False, pooling="avg",
                             input_shape=(size, size, 3))
        logits = keras.layers.Dense(
            num_classes, name="predictions",
            dtype=gate_dtype_policy(keras.config.dtype_policy()),
        )(backbone.output)
        with application.deep_graph():
            model = keras.Model(backbone.inputs, logits, name=backbone.name)
    if config["freeze_backbone"]:
        for layer in model.layers:
            layer.trainable = layer.name == "predictions"
    return model


def _optimizer(config, lr, steps, total_steps):
    warmup = min(int(config["warmup_epochs"] * steps), total_steps - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else lr,
        decay_steps=max(total_steps - warmup, 1),
        warmup_target=lr if warmup else None,
        warmup_steps=warmup,
    )
    ema = {"use_ema": True, "ema_momentum": config["ema"]} if config["ema"] else {}
    if config["optimizer"] == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True,
                                         weight_decay=config["weight_decay"] or None, **ema)
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config["weight_decay"], **ema)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def _callbacks(config, model, logs_dir, history, best, chief, worker, steps):
    model_dir = config["model_dir"]
    callbacks = []
    if config["ema"]:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    callbacks += [
        outputs.Checkpoints(model_dir, best, chief, worker),
        outputs.MetricsLog(model_dir, history, chief),
        keras.callbacks.TensorBoard(logs_dir, write_graph=False, profile_batch=0),
    ]
    return keras.callbacks.CallbackList(
        callbacks, add_progbar=True, model=model, verbose=1 if sys.stdout.isatty() else 2,
        epochs=config["epochs"], steps=steps,
    )


def _report(config, summary, data):
    best = summary["best"]
    line = (f"Done: best validation top-1 {best.get('val_accuracy', float('nan')):.4f} at epoch "
            f"{best.get('epoch')}; {summary['epochs']} epochs, {summary['seconds']:.0f} s, "
            f"{summary['images_per_second']} images/s; outputs in {config['model_dir']}.")
    if data.skipped:
        shown = ", ".join(data.skipped[:5]) + (" ..." if len(data.skipped) > 5 else "")
        line += f" {len(data.skipped)} unreadable image(s) were skipped: {shown}."
    print(line, flush=True)


def main(argv):
    """The absl program: `run` with the parsed flags; bad flags, missing files and a diverging
    run end with a message naming the cause (exit status 1), not a traceback.

    Args:
        argv: what absl leaves of the command line after parsing the flags: the program's
            name alone.

    Raises:
        absl.app.UsageError: arguments beyond the flags (absl prints the usage).
        SystemExit: status 1 after printing the message, for the errors `run` raises.

    Examples:
        ```python
        from absl import app
        from keras_attn.training.flags import define_flags
        define_flags()
        app.run(main)      # what entry_point does, with the help text set up
        ```
    """
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        run(flags.FLAGS)
    except (ValueError, OSError, ImportError, FloatingPointError) as error:
        # Bad flags, missing files and a diverging run are the user's to fix: a message that
        # names the flag, not a traceback (the other keras-attn commands do the same).
        print(f"{os.path.basename(argv[0])}: error: {error}", file=sys.stderr)
        sys.exit(1)


USAGE = """Train or fine-tune a keras_attn network.

USAGE: keras-attn train --model=NAME (--dataset=NAME | --data_dir=DIR) --model_dir=DIR [flags]
"""


def entry_point(argv=None):
    """Defines the flags on absl's FLAGS and runs the program (console script, -m).

    `keras-attn train` and `python -m keras_attn.training` call it. It also makes
    `--help` list the training flags and open with the program's usage.

    Args:
        argv: the command line, the program's name first; None for `sys.argv`.

    Raises:
        SystemExit: always, when the program ends (absl's `app.run`): status 0 after
            training, 1 on an error `main` reports.

    Examples:
        ```python
        entry_point(["keras-attn train", "--model=seresnet20_cifar", "--dataset=digits",
                     "--model_dir=runs/digits", "--epochs=2"])
        ```
    """
    define_flags()
    # absl's --help lists the key flags of the module named by sys.argv[0] (the console script,
    # or -m's path): make the training flags key flags of it.
    for name in flag_names():
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
    # absl's --help opens with the __main__ module's docstring, else "USAGE: <argv[0]> [flags]",
    # which for the console script names a command that would not train.
    main_module = sys.modules.get("__main__")
    if main_module is not None and not main_module.__doc__:
        main_module.__doc__ = USAGE
    app.run(main, argv=argv)
