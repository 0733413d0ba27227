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

__all__ = [
    "Checkpoints", "MetricsLog", "plot", "TrainingBackup", "write_atomically",
]

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "val_top5", "learning_rate",
           "seconds")


def write_atomically(path, data):
    """Writes bytes or text to `path` through a temporary file and a rename.

    A reader (or a run resumed after a kill) finds the previous file or the new one, never
    half of one; the temporary file beside `path` is removed whatever happens.

    Args:
        path: the file to write (replaced if it exists).
        data: `bytes` (written as they are) or `str` (written as text).

    Raises:
        OSError: the file cannot be written (`FileNotFoundError` when its folder is
            missing).

    Examples:
        >>> import os
        >>> write_atomically("config.json", '{"epochs": 2}')
        >>> open("config.json").read()
        '{"epochs": 2}'
        >>> [name for name in os.listdir(".") if name.startswith("config.json")]  # no .part
        ['config.json']
    """
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

    Examples:
        >>> import os, keras
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> model.compile(optimizer="sgd", loss="mse")
        >>> backup = TrainingBackup("run/backup", model)
        >>> backup.restore() is None                       # nothing backed up yet
        True
        >>> backup.save(epoch=1, step=20, history=[{"epoch": 1, "loss": 0.5}],
        ...             best={"val_accuracy": 0.9, "epoch": 1})
        >>> sorted(os.listdir("run/backup"))
        ['latest', 'state-00001-0000020-...']
        >>> state = backup.restore()                       # weights and optimizer loaded
        >>> state["epoch"], state["step"], state["best"]
        (1, 20, {'val_accuracy': 0.9, 'epoch': 1})
    """

    def __init__(self, backup_dir, model, chief=True, worker="0"):
        self.model = model
        self.chief = chief
        self.root = backup_dir if chief else os.path.join(backup_dir, f".worker-{worker}")
        self.pointer = os.path.join(backup_dir, "latest")
        self.backup_dir = backup_dir

    def exists(self):
        """Whether a backup exists (its pointer file, `<backup_dir>/latest`)."""
        return os.path.exists(self.pointer)

    def restore(self):
        """Loads the latest backup into the model (weights and optimizer state).

        Returns:
            The state saved with it, `{"epoch", "step", "history", "best",
            "epoch_totals"}`, or None when there is no backup.
        """
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
        far, which a resumed epoch continues from.

        The chief writes a new folder, points `latest` at it and removes the previous one
        (and any left by a run killed mid-save); another worker saves into a scratch folder
        that it deletes.

        Args:
            epoch: the epoch, 0-based.
            step: steps done in that epoch.
            history: the per-epoch logs so far (JSON-serialisable).
            best: `{"val_accuracy", "epoch"}` of the best epoch so far.
            epoch_totals: the epoch's running `(loss sum, correct, count)`, or None.
        """
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
    improves (with EMA on, the averaged weights: SwapEMAWeights runs before this).

    Both are written atomically (`save_weights_atomically`). Whether the epoch is the best
    is read from `best`, which the training loop updates before the callbacks run.

    Args:
        model_dir: the folder the checkpoints go to (`--model_dir`).
        best: the loop's dict `{"val_accuracy", "epoch"}` (1-based epoch), shared, not copied.
        chief: whether this process writes into `model_dir`; another worker saves into a
            scratch folder that it deletes.
        worker: a name for that scratch folder.

    Examples:
        >>> import os, keras
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> checkpoints = Checkpoints("run", best={"val_accuracy": 0.9, "epoch": 1})
        >>> checkpoints.set_model(model)
        >>> checkpoints.on_epoch_end(0)               # epoch 1 is the best: both are written
        >>> sorted(name for name in os.listdir("run") if name.endswith(".h5"))
        ['best.weights.h5', 'last.weights.h5']
    """

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
    resumed run neither repeats nor loses an epoch) and, at the end, `metrics.png`.

    Columns: epoch, loss, accuracy, val_loss, val_accuracy, val_top5, learning_rate,
    seconds (other keys of the history are left out). Only the chief writes.

    Args:
        model_dir: the folder the files go to (`--model_dir`).
        history: the loop's list of per-epoch logs, shared, not copied.
        chief: whether this process writes (the other workers write nothing).

    Examples:
        >>> history = [{"epoch": 1, "loss": 2.1, "accuracy": 0.3, "val_loss": 1.9,
        ...             "val_accuracy": 0.4, "val_top5": 0.9, "learning_rate": 0.1,
        ...             "seconds": 12.5}]
        >>> log = MetricsLog(".", history)
        >>> log.on_epoch_end(0)
        >>> print(open("metrics.csv").read())
        epoch,loss,accuracy,val_loss,val_accuracy,val_top5,learning_rate,seconds
        1,2.1,0.3,1.9,0.4,0.9,0.1,12.5
    """

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
    """PNG bytes of the loss and accuracy curves of a history: `metrics.png` of a run.

    Args:
        history: per-epoch logs, each with `epoch`, `loss`, `val_loss`, `accuracy` and
            `val_accuracy` (the rows of `metrics.csv`).

    Returns:
        The PNG file's bytes: two panels, loss and accuracy against the epoch, training and
        validation.

    Raises:
        ImportError: matplotlib is missing (`pip install "keras-attn[train]"`).
        KeyError: a row lacks one of those keys.

    Examples:
        >>> history = [{"epoch": e, "loss": 2.0 / e, "val_loss": 2.2 / e,
        ...             "accuracy": 0.3 * e, "val_accuracy": 0.25 * e} for e in (1, 2, 3)]
        >>> png = plot(history)
        >>> png[:8]
        b'\\x89PNG\\r\\n\\x1a\\n'
    """
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
