"""A run killed with SIGKILL in the middle of an epoch resumes from its backup; two workers on
127.0.0.1 train in lockstep."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.training.conftest import QUICK

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _environment(**extra):
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT, **extra}


def _train_command(model_dir, *args):
    quick = [arg for arg in QUICK if not arg.startswith(("--epochs", "--steps_per_epoch"))]
    return [sys.executable, "-m", "keras_attn.training", *quick, f"--model_dir={model_dir}",
            *args]


# The training program, killed by SIGKILL right after its backup at step 6 of the second epoch:
# at a known point, whatever the machine's load.
KILLED_AFTER_A_BACKUP = """
import os
import signal
import sys
from keras_attn import cli
from keras_attn.training import callbacks
save = callbacks.TrainingBackup.save
def save_then_die(self, epoch, step, history, best):
    save(self, epoch, step, history, best)
    if (epoch, step) == (1, 6):
        os.kill(os.getpid(), signal.SIGKILL)
callbacks.TrainingBackup.save = save_then_die
sys.exit(cli.main(["train", *sys.argv[1:]]))
"""


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_resumes_and_logs_each_epoch_once(tmp_path):
    model_dir = tmp_path / "run"
    command = _train_command(model_dir, "--epochs=3", "--steps_per_epoch=12", "--backup_steps=3")
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_A_BACKUP, *command[3:]],
                            env=_environment(), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (model_dir / "backup" / "latest").read_text().startswith("state-00001-0000006-")
    with open(model_dir / "metrics.csv") as file:
        assert [row["epoch"] for row in csv.DictReader(file)] == ["1"]

    rerun = subprocess.run(command, env=_environment(), capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"Resuming from the backup in {model_dir / 'backup'}: epoch 2, step 6 of 12." \
        in rerun.stdout
    assert "Epoch 1/3" not in rerun.stdout and "Epoch 3/3" in rerun.stdout
    with open(model_dir / "metrics.csv") as file:
        assert [row["epoch"] for row in csv.DictReader(file)] == ["1", "2", "3"]


@pytest.mark.slow
def test_sigterm_stops_the_run_through_its_cleanup(tmp_path):
    # `timeout`, `docker stop` and cancelled jobs send SIGTERM: the program exits with
    # 128 + 15 after its `finally` blocks ran, not killed outright with a scratch folder left.
    model_dir = tmp_path / "run"
    command = _train_command(model_dir, "--epochs=1", "--steps_per_epoch=400",
                             "--backup_steps=1")
    pointer = model_dir / "backup" / "latest"
    process = subprocess.Popen(command, env=_environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and process.poll() is None and not pointer.exists():
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM
    left = os.listdir(model_dir / "backup")
    assert pointer.read_text() in left
    assert not [name for name in left if name.startswith(".")], left  # no scratch folder


def _free_ports(count):
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
