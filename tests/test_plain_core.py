"""The core is plain Keras: importing it changes nothing global, and no file of it reads the
CPU, private TensorFlow modules or the traced graph."""

import json
import os
import pathlib
import re
import subprocess
import sys

import keras_attn

PACKAGE = pathlib.Path(keras_attn.__file__).parent
# What a layer keyed on the CPU or the traced graph reads; `.op` directly or through getattr.
FORBIDDEN = re.compile(r"/proc/cpuinfo|_pywrap_util_port|__cpu_features__|\.op\b|"
                       r"getattr\([^)]*[\"']op[\"']")


def test_no_file_reads_the_cpu_private_tensorflow_modules_or_the_traced_graph():
    found = [f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), start=1)
             if FORBIDDEN.search(line)]
    assert found == []


def test_the_check_finds_what_it_looks_for():
    for line in ("x = inputs.op", "getattr(inputs, 'op', None)", "open('/proc/cpuinfo')",
                 "from tensorflow.python.util import _pywrap_util_port",
                 "from numpy._core._multiarray_umath import __cpu_features__"):
        assert FORBIDDEN.search(line), line
    assert not FORBIDDEN.search("self.optimizer = keras.optimizers.SGD()")


_PROBE = """
import json, os, sys
before = dict(os.environ)
import keras
state = lambda: [keras.config.floatx(), keras.config.image_data_format(),
                 keras.config.dtype_policy().name, keras.config.epsilon(), keras.backend.backend()]
keras_state = state()
import keras_attn, keras_attn.applications, keras_attn.layers
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print(json.dumps({"onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "changed": changed,
                  "keras": state() == keras_state,
                  "tensorflow_imported": "tensorflow" in sys.modules}))
"""


def test_import_sets_no_environment_variable_and_no_global_keras_state():
    environment = {key: value for key, value in os.environ.items()
                   if key != "TF_ENABLE_ONEDNN_OPTS"}
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                            env={**environment, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"onednn": None, "changed": [], "keras": True,
                      "tensorflow_imported": report["tensorflow_imported"]}


def test_the_acceptance_command_prints_none():
    environment = {key: value for key, value in os.environ.items()
                   if key != "TF_ENABLE_ONEDNN_OPTS"}
    result = subprocess.run(
        [sys.executable, "-c",
         "import os, keras_attn; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"],
        capture_output=True, text=True, env={**environment, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=True)
    assert result.stdout.strip().splitlines()[-1] == "None"
