"""Fault tolerance and outputs of a training run: backup, checkpoints, metrics, plot.

Every file is written whole or not at all (a temporary name, then a rename), so a run killed
at any moment leaves either the previous file or the new one. Under multi-worker training
every worker writes (saving reads variables, which may involve every worker), but only the
chief writes into `model_dir`; the others write to scratch folders that they delete.
"""

import csv
import io
import json
import os
import shutil
import uuid

import keras

from keras_attn.weights.fetch import save_weights_atomically

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "val_top5", "learning_rate",
           "seconds")


def write_atomically(path, data):
    """Writes bytes or text to `path` through a temporary file and a rename."""
    part = f"{path}.part-{uuid.uuid4().hex}"
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        with open(part, mode) as file:
            file.write(data)
        os.replace(part, path)
    finally:
        if os.path.exists(part):
            os.remove(part)


class TrainingBackup:
    """Backs up and restores the whole training state: weights, optimizer state (in the
    weights file of a compiled model), epoch, step within the epoch, and the history.

    This is Keras' `BackupAndRestore` for a custom loop, with two differences: it resumes at
    the step where the backup was taken (Keras' restores the epoch only), and a backup is a
    new folder made current by rewriting a one-line pointer, so a run killed while writing
    leaves the previous backup intact.

    Args:
        backup_dir: folder of the backups (inside `--model_dir`).
        model: the compiled model.
        chief: whether this process owns `backup_dir`.
        worker: a name for this process's scratch folder when it is not the chief.
    """

    def __init__(self, backup_dir, model, chief=True, worker="0"):
        self.model = model
        self.chief = chief
        self.root = backup_dir if chief else os.path.join(backup_dir, f".worker-{worker}")
        self.pointer = os.path.join(backup_dir, "latest")
        self.backup_dir = backup_dir

    def exists(self):
        return os.path.exists(self.pointer)

    def restore(self):
        """Loads the latest backup into the model; returns its state dict, or None."""
        if not self.exists():
            return None
        with open(self.pointer) as file:
            folder = os.path.join(self.backup_dir, file.read().strip())
        optimizer = self.model.optimizer
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(folder, "state.weights.h5"))
        with open(os.path.join(folder, "state.json")) as file:
            return json.load(file)

    def save(self, epoch, step, history, best, epoch_totals=None):
        """Backs up the state after `step` steps of epoch `epoch` (0-based; step 0: the
        epoch has not started), with the epoch's running `(loss sum, correct, count)` so
        far, which a resumed epoch continues from."""
        os.makedirs(self.root, exist_ok=True)
        if self.chief:
            self._remove_stale()
        name = f"state-{epoch:05d}-{step:07d}-{uuid.uuid4().hex[:8]}"
        scratch = os.path.join(self.root, f".{name}.part")
        try:
            os.makedirs(scratch)
            self.model.save_weights(os.path.join(scratch, "state.weights.h5"))
            state = {"epoch": epoch, "step": step, "history": history, "best": best,
                     "epoch_totals": epoch_totals}
            with open(os.path.join(scratch, "state.json"), "w") as file:
                json.dump(state, file)
            if not self.chief:
                return
            os.replace(scratch, os.path.join(self.root, name))
            previous = self._current()
            write_atomically(self.pointer, name)
            if previous and previous != name:
                shutil.rmtree(os.path.join(self.root, previous), ignore_errors=True)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            if not self.chief:
                shutil.rmtree(self.root, ignore_errors=True)

    def _remove_stale(self):
        # A run killed mid-save (SIGKILL runs no cleanup) leaves its scratch folder, or a
        # finished backup that the pointer never reached or no longer names: none is ever read.
        current = self._current()
        for entry in os.scandir(self.root):
            stale = entry.name.startswith(".state-") or (
                entry.name.startswith("state-") and entry.name != current)
            if stale and entry.is_dir():
                shutil.rmtree(entry.path, ignore_errors=True)

    def _current(self):
        if not self.exists():
            return None
        with open(self.pointer) as file:
            return file.read().strip()


class Checkpoints(keras.callbacks.Callback):
    """Writes `last.weights.h5` after every epoch and `best.weights.h5` when validation top-1
    improves (with EMA on, the averaged weights: SwapEMAWeights runs before this)."""

    def __init__(self, model_dir, best, chief=True, worker="0"):
        super().__init__()
        self.folder = model_dir if chief else os.path.join(model_dir, f".worker-{worker}")
        self.chief = chief
        self.best = best  # shared with the loop: {"val_accuracy": ..., "epoch": ...}

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.folder, exist_ok=True)
        save_weights_atomically(self.model, os.path.join(self.folder, "last.weights.h5"))
        if self.best.get("epoch") == epoch + 1:
            save_weights_atomically(self.model, os.path.join(self.folder, "best.weights.h5"))
        if not self.chief:
            shutil.rmtree(self.folder, ignore_errors=True)


class MetricsLog(keras.callbacks.Callback):
    """`metrics.csv` (one row per finished epoch, rewritten whole from the history, so a
    resumed run neither repeats nor loses an epoch) and, at the end, `metrics.png`."""

    def __init__(self, model_dir, history, chief=True):
        super().__init__()
        self.model_dir = model_dir
        self.history = history  # the loop's list of per-epoch logs, restored on resume
        self.chief = chief

    def on_epoch_end(self, epoch, logs=None):
        if not self.chief:
            return
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=("epoch",) + METRICS, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        for row in self.history:
            writer.writerow(row)
        write_atomically(os.path.join(self.model_dir, "metrics.csv"), text.getvalue())

    def on_train_end(self, logs=None):
        if self.chief and self.history:
            write_atomically(os.path.join(self.model_dir, "metrics.png"), plot(self.history))


def plot(history):
    """PNG bytes of the loss and accuracy curves of a history."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    epochs = [row["epoch"] for row in history]
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [row["loss"] for row in history], label="train")
    left.plot(epochs, [row["val_loss"] for row in history], label="validation")
    left.set(xlabel="epoch", ylabel="loss", title="Loss")
    right.plot(epochs, [row["accuracy"] for row in history], label="train")
    right.plot(epochs, [row["val_accuracy"] for row in history], label="validation top-1")
    right.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot.close(figure)
    return buffer.getvalue()
