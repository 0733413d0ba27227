#!/usr/bin/env bash
# The package as users install it: build the sdist and the wheel, install the wheel
# (non-editable) into a fresh virtual environment, and use it there, away from this checkout.
#
# Run with the test environment active (.ci/run does). The new environment gets the wheel alone
# (--no-deps); its dependencies (TensorFlow is ~600 MB) come from the test environment through a
# path file, which adds that site-packages as a plain directory: its .pth files, among them the
# checkout's editable install, are not run. The checks assert that keras_attn is imported from
# the new environment.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout="$PWD"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# --no-isolation: the build requirements (pyproject.toml) come from the test environment, which
# `build` checks; an isolated build installs them anew, 3x slower here.
python -m build --no-isolation --outdir "$scratch/dist" .
wheel=("$scratch"/dist/keras_attn-*-py3-none-any.whl)
sdist=("$scratch"/dist/keras_attn-*.tar.gz)
# The sdist carries what a rebuild needs, the licence included.
tar -tzf "${sdist[0]}" > "$scratch/sdist.txt"
grep -q '/LICENSE$' "$scratch/sdist.txt"
grep -q '/keras_attn/weights/manifest.json$' "$scratch/sdist.txt"

test_site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
python -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install --quiet --no-deps "${wheel[0]}"
venv_site="$("$scratch/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$test_site" > "$venv_site/test_environment_dependencies.pth"

cd "$scratch"
export KERAS_HOME="$scratch/keras_home" TF_CPP_MIN_LOG_LEVEL=2
"$scratch/venv/bin/python" - "$scratch/venv" "$checkout" "${wheel[0]}" <<'PY'
import contextlib
import importlib.metadata
import io
import os
import sys
import zipfile

import numpy as np

import keras_attn
from keras_attn import applications, weights

venv, checkout, wheel = sys.argv[1:]
where = os.path.realpath(keras_attn.__file__)
assert where.startswith(os.path.realpath(venv) + os.sep), f"imported from {where}"
assert not where.startswith(os.path.realpath(checkout) + os.sep), where
assert f"keras_attn-{keras_attn.__version__}-" in os.path.basename(wheel)

# What the wheel ships besides the code: the licence, the metadata, the data files.
with zipfile.ZipFile(wheel) as archive:
    names = archive.namelist()
    metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
assert any(name.endswith(".dist-info/licenses/LICENSE") or name.endswith(".dist-info/LICENSE")
           for name in names), names
assert "Project-URL: Documentation, " in metadata and "Classifier: " in metadata

# `keras-attn models`: the console script the wheel declares, run here rather than in a second
# process (TensorFlow's import costs ~15 s a process on two cores).
script = os.path.join(venv, "bin", "keras-attn")
with open(script) as file:
    interpreter = file.readline()[2:].strip()
assert os.path.dirname(interpreter) == os.path.join(venv, "bin"), interpreter
# The first keras-attn on the path: the wheel's (the test environment holds the checkout's).
installed = importlib.metadata.distribution("keras-attn")
assert installed.version == keras_attn.__version__
(entry,) = [point for point in installed.entry_points
            if point.group == "console_scripts" and point.name == "keras-attn"]
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    assert entry.load()(["models"]) in (0, None)
listed = [line.split()[0] for line in printed.getvalue().splitlines()]
assert listed == applications.list_models(), listed[:5]

model = applications.get_model("resnest14d", widths=(8, 16, 32, 64), depths=(1, 1, 1, 1),
                               input_shape=(32, 32, 3), classes=10)
probabilities = np.asarray(model(np.zeros((2, 32, 32, 3), "float32")))
assert probabilities.shape == (2, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)

assert weights.tags("resnest50d") and weights.checkpoint_url("resnest50d", "in1k").startswith(
    "https://huggingface.co/timm/resnest50d.in1k/")
scores = np.zeros((1, 1000), "float32")
scores[0, 281] = 1.0
assert applications.decode_predictions(scores, top=1)[0][0][:2] == ("n02123045", "tabby")
print(f"wheel {os.path.basename(wheel)}: imported from {where}; {len(listed)} models; "
      "forward pass, manifest and ImageNet class index work")
PY
