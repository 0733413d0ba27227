"""A run killed with SIGKILL in the middle of an epoch resumes from its backup; two workers on
127.0.0.1 train in lockstep."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.processes import wait_for_line
from tests.training.conftest import QUICK

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _environment(**extra):
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT, **extra}


def _train_command(model_dir, *args):
    quick = [arg for arg in QUICK if not arg.startswith(("--epochs", "--steps_per_epoch"))]
    return [sys.executable, "-m", "keras_attn.training", *quick, f"--model_dir={model_dir}",
            *args]


# The training program, killed by SIGKILL right after its backup at step 4 of the second epoch:
# at a known point, whatever the machine's load.
KILLED_AFTER_A_BACKUP = """
import os
import signal
import sys
from keras_attn import cli
from keras_attn.training import callbacks
save = callbacks.TrainingBackup.save
def save_then_die(self, epoch, step, *args):
    save(self, epoch, step, *args)
    if (epoch, step) == (1, 4):
        os.kill(os.getpid(), signal.SIGKILL)
callbacks.TrainingBackup.save = save_then_die
sys.exit(cli.main(["train", *sys.argv[1:]]))
"""


def _metrics_without_seconds(model_dir):
    """metrics.csv's rows as text, less the wall-clock column that no two runs share."""
    with open(model_dir / "metrics.csv", newline="") as file:
        return [{key: value for key, value in row.items() if key != "seconds"}
                for row in csv.DictReader(file)]


def _weights(path):
    """Every array of a .weights.h5 file, by its path in the file."""
    import h5py

    arrays = {}
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                        if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_ends_as_the_run_left_alone(tmp_path):
    model_dir, alone_dir = tmp_path / "run", tmp_path / "alone"
    # Two epochs: a finished one before the kill (its metrics row and best weights kept) and
    # one resumed mid-epoch, from a backup that replaced an earlier one of that epoch (step 2).
    flags = ("--epochs=2", "--steps_per_epoch=6", "--backup_steps=2")
    command = _train_command(model_dir, *flags)
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_A_BACKUP, *command[3:]],
                            env=_environment(), capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (model_dir / "backup" / "latest").read_text().startswith("state-00001-0000004-")
    assert [row["epoch"] for row in _metrics_without_seconds(model_dir)] == ["1"]

    rerun = subprocess.run(command, env=_environment(), capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"Resuming from the backup in {model_dir / 'backup'}: epoch 2, step 4 of 6." \
        in rerun.stdout
    assert "Epoch 1/2" not in rerun.stdout and "Epoch 2/2" in rerun.stdout

    # The same run, never interrupted: the resumed one ends with the same weights and the same
    # metrics, to the last bit (one device, one process, the same seeds and data order).
    alone = subprocess.run(_train_command(alone_dir, *flags), env=_environment(),
                           capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr[-3000:]
    metrics = _metrics_without_seconds(model_dir)
    assert [row["epoch"] for row in metrics] == ["1", "2"]
    assert metrics == _metrics_without_seconds(alone_dir)
    for name in ("last.weights.h5", "best.weights.h5"):
        resumed, uninterrupted = _weights(model_dir / name), _weights(alone_dir / name)
        assert resumed.keys() == uninterrupted.keys() and len(resumed) > 0
        for key, array in resumed.items():
            np.testing.assert_array_equal(array, uninterrupted[key], err_msg=f"{name}: {key}")


# The training program, printing a line after each backup: the test signals it at that point.
REPORTS_ITS_BACKUPS = """
import sys
from keras_attn import cli
from keras_attn.training import callbacks
save = callbacks.TrainingBackup.save
def save_and_report(self, *args):
    save(self, *args)
    print("backed up", flush=True)
callbacks.TrainingBackup.save = save_and_report
sys.exit(cli.main(["train", *sys.argv[1:]]))
"""


@pytest.mark.slow
def test_sigterm_stops_the_run_through_its_cleanup(tmp_path):
    # `timeout`, `docker stop` and cancelled jobs send SIGTERM: the program exits with
    # 128 + 15 after its `finally` blocks ran, not killed outright with a scratch folder left.
    model_dir = tmp_path / "run"
    command = _train_command(model_dir, "--epochs=1", "--steps_per_epoch=400",
                             "--backup_steps=1")
    with open(tmp_path / "stderr", "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-c", REPORTS_ITS_BACKUPS, *command[3:]],
                                   env=_environment(), stdout=subprocess.PIPE, stderr=stderr,
                                   bufsize=0)
    try:
        # Signalled right after its first backup, with 399 steps to go: mid-run.
        wait_for_line(process, "backed up")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    assert process.returncode == 128 + signal.SIGTERM, (tmp_path / "stderr").read_text()[-3000:]
    left = os.listdir(model_dir / "backup")
    assert (model_dir / "backup" / "latest").read_text() in left
    assert not [name for name in left if name.startswith(".")], left  # no scratch folder


def _free_ports(count):
    # Bound, then closed for the workers to bind: another process may take a port in between.
    # The usual cure, holding the port with SO_REUSEPORT while the server binds it too, does not
    # work here: TensorFlow's gRPC server turns SO_REUSEPORT off ("Could not start gRPC server"
    # on a port held so, TensorFlow 2.21), and TF_CONFIG takes port numbers, not sockets.
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


WORKER = """
import sys
import numpy as np
from absl import flags
from keras_attn.training import train
from keras_attn.training.flags import define_flags
values = flags.FlagValues()
define_flags(values)
values(["train", *sys.argv[2:]])
summary = train.run(values)
np.savez(sys.argv[1], *[w for w in summary["model"].get_weights()])
"""


@pytest.mark.slow
def test_two_workers_on_localhost_end_with_identical_weights(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    try:
        for index in range(2):
            config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            args = [*QUICK, "--strategy=multi_worker", "--sync_bn", "--steps_per_epoch=3",
                    "--batch_size=16", f"--model_dir={tmp_path / 'run'}"]
            processes.append(subprocess.Popen(
                [sys.executable, "-c", WORKER, str(tmp_path / f"worker{index}.npz"), *args],
                env=_environment(TF_CONFIG=config), stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True,
            ))
        outputs = [process.communicate(timeout=400)[0] for process in processes]
    finally:
        for process in processes:  # one worker dead leaves the other waiting on it
            if process.poll() is None:
                process.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    assert "2 replica(s)" in outputs[0]
    first, second = (np.load(tmp_path / f"worker{index}.npz") for index in range(2))
    assert len(first.files) > 0
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key])
    # Only the chief (worker 0) wrote outputs; the other cleaned its scratch folders up.
    assert not [name for name in os.listdir(tmp_path / "run") if name.startswith(".worker")]
    assert (tmp_path / "run" / "last.weights.h5").exists()
