"""Helpers of tests/backends: each backend runs in a subprocess (Keras picks one per process).

The JAX and PyTorch tests live in separate files so that pytest-xdist (`--dist loadfile`) runs
them on different workers.
"""

import os
import re
import subprocess
import sys

import keras
import numpy as np

from tests.backends import worker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# The networks of these tests are tiny and most run once, so under JAX compiling them is most of
# the time (a 64-pixel network spent 10 of its 11.6 s build compiling its initializers). XLA's
# LLVM passes at level 0 took the JAX rerun of the `backends` tests from 357 s to 254 s on the
# 2-core CI machine, every test passing at the same tolerances.
_FAST_COMPILE = "--xla_backend_optimization_level=0"
# PyTorch's OpenMP threads spin while they wait for each other; beside another busy process
# (the other pytest-xdist worker) they wait on threads that are not running. These tensors are
# too small to gain from threads: one thread took the PyTorch rerun of the `backends` tests from
# 62 s to 12 s (process CPU time 44 s to 9 s) on the 2-core machine with other work running.
_ONE_TORCH_THREAD = {"OMP_NUM_THREADS": "1"}


def run(args, backend, timeout, **env):
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", **env)
    if backend == "jax":
        environment["XLA_FLAGS"] = f"{environment.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()
    if backend == "torch":
        environment.update(_ONE_TORCH_THREAD)
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"KERAS_BACKEND={backend} {' '.join(args)}:\n{output[-6000:]}"
    return output


def run_worker(command, folder, backend, *more, **env):
    """Runs `tests.backends.worker` under `backend`; `more` holds further command, folder
    pairs for the same process."""
    arguments = [str(argument) for argument in (command, folder, *more)]
    return run(["-m", "tests.backends.worker", *arguments], backend, 900, **env)


def assert_backend_independent_tests_pass(backend):
    """Runs the tests marked `backends` under `backend`: every one must pass, none skipped."""
    collected = run(["-m", "pytest", "-m", "backends", "--collect-only", "-q",
                     "-p", "no:cacheprovider", "-o", "addopts="], "tensorflow", 300)
    expected = int(re.search(r"(\d+)(?:/\d+)? tests? (?:collected|selected)", collected).group(1))
    output = run(["-m", "pytest", "-m", "backends", "-q", "-p", "no:cacheprovider",
                  "-o", "addopts=", "--durations=5"], backend, 1500)
    summary = output.strip().splitlines()[-1]
    print(f"KERAS_BACKEND={backend}: {summary}")
    assert re.fullmatch(rf"=* ?{expected} passed(, \d+ deselected)?(, \d+ warnings?)? "
                        rf"in [\d.]+s.*", summary), summary


def assert_keras_files_move(backend, tmp_path):
    """`.keras` files saved here load under `backend`, and the reverse, with equal outputs."""
    here = keras.backend.backend()
    ours, theirs = tmp_path / here, tmp_path / backend
    ours.mkdir()
    theirs.mkdir()
    worker.save(str(ours))
    # Saved here, loaded there; then saved there (one process), loaded here.
    run_worker("load", ours, backend, "save", theirs)
    worker.load(str(theirs))
    for family in worker.FAMILIES:
        for folder, reader in ((ours, backend), (theirs, here)):
            expected = np.load(folder / f"{family}.npz")["outputs"]
            actual = np.load(folder / f"{family}.{reader}.npz")["outputs"]
            assert expected.shape == (2, 5)
            np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5,
                                       err_msg=f"{family}: {folder.name} -> {reader}")
