"""The benchmarks' command lines: bad input stops with a usage error before any model is built."""

import argparse
import json
import os
import subprocess
import sys

import pytest

from benchmarks import arguments

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parser():
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("names", nargs="*")
    parser.add_argument("--rounds", type=int, default=3)
    return parser


def _usage_error(argv, capsys):
    parser = _parser()
    with pytest.raises(SystemExit) as exit_info:
        arguments.check(parser, parser.parse_args(argv), minimums={"rounds": 1})
    assert exit_info.value.code == 2
    return capsys.readouterr().err.splitlines()[-1]


def test_check_names_an_unknown_network_and_suggests_close_ones(capsys):
    message = _usage_error(["resnext50_32x4d", "seresnext50"], capsys)
    assert message.startswith("bench: error: Unknown model name 'seresnext50'. Did you mean ")
    assert "'seresnext50_32x4d'" in message


def test_check_names_a_count_below_one(capsys):
    assert _usage_error(["--rounds", "0"], capsys) == (
        "bench: error: --rounds must be >= 1; received 0")


def test_check_passes_registered_names_and_positive_counts():
    parser = _parser()
    args = parser.parse_args(["resnest50d", "seresnet50", "--rounds", "1"])
    assert arguments.check(parser, args, minimums={"rounds": 1}) is None


def test_split_choices_returns_the_items_in_order():
    parser = _parser()
    assert arguments.split_choices(parser, "--formats", "contiguous,channels_last",
                                   ("channels_last", "contiguous"), "memory format") == [
        "contiguous", "channels_last"]


# Each case runs the script's `main` as `python -m benchmarks.SCRIPT ARGV` would (the same
# sys.argv, so argparse names the same program), all in ONE subprocess: each script imports
# TensorFlow (and throughput/grouped_conv torch and timm), seconds per process. The work after
# the arguments is replaced by a recorder that raises: a case that reached it built a model.
USAGE_ERRORS = [
    ("export_grouped", ["resnxt50"], "error: Unknown model name 'resnxt50'."),
    ("throughput", ["resnet5", "--no_timm"], "error: Unknown model name 'resnet5'."),
    ("throughput", ["--warmup", "-1"], "error: --warmup must be >= 0; received -1"),
    ("throughput", ["--implementations", "auto,packed"],
     "error: --implementations: unknown implementation 'packed'; expected one of auto, native, "
     "split"),
    ("throughput", ["--timm_memory_formats", "channels_last,nchw"],
     "error: --timm_memory_formats: unknown memory format 'nchw'; expected one of "
     "channels_last, contiguous"),
    ("grouped_conv", ["--shapes", "56"], "error: unrecognized arguments: --shapes 56"),
    ("grouped_conv", ["--threads", "0"], "error: --threads must be >= 1; received 0"),
    ("runtimes", ["--runtimes", "keras,tensorrt"],
     "error: --runtimes: unknown runtime 'tensorrt'; expected one of keras, saved_model, "
     "tflite_f32, tflite_int8, onnx_f32, onnx_int8, openvino, timm"),
    ("quantization", ["--calibration", "65", "--train_crops", "64"],
     "error: --calibration (65) must be at most --train_crops (64)"),
    ("quantization", ["--models", "digits,seresnet5"], "error: Unknown model name 'seresnet5'."),
]

BENCHMARKS_PROCESS = """
import contextlib
import io
import json
import sys

# throughput first: it imports torch before TensorFlow, as its own process does.
from benchmarks import throughput, grouped_conv, export_grouped, quantization, runtimes

built = []


def recorder(name):
    def build(*args, **kwargs):
        built.append(name)
        raise RuntimeError(f"{name} was called")
    return build


# What each main does once its arguments are read: build and time networks or convolutions.
for module, names in ((throughput, ("run", "get_model")),
                      (export_grouped, ("measure", "get_model")),
                      (grouped_conv, ("keras_native", "_timings")),
                      (runtimes, ("run", "export_all")),
                      (quantization, ("measure", "network"))):
    for name in names:
        setattr(module, name, recorder(f"{module.__name__}.{name}"))

output, cases = sys.argv[1], json.loads(sys.argv[2])
results = []
for script, argv in cases:
    module = sys.modules[f"benchmarks.{script}"]
    sys.argv = [module.__file__, *argv]
    stdout, stderr = io.StringIO(), io.StringIO()
    del built[:]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            module.main()
            code = 0
        except SystemExit as error:
            code = error.code
        except Exception as error:
            code = repr(error)
    results.append({"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(),
                    "built": list(built)})

both = {"channels_last": {"infer": 26.2, "train": 7.12},
        "contiguous": {"infer": 21.2, "train": 7.3}}
fastest = [throughput._fastest(both, "infer", 1), throughput._fastest(both, "train", 2),
           throughput._fastest({"contiguous": {"infer": 16.2}}, "infer", 1),
           throughput._fastest({"channels_last": {"infer": 13.0}, "contiguous": {}}, "train", 2)]
with open(output, "w") as file:
    json.dump({"usage_errors": results, "fastest": fastest}, file)
"""


@pytest.fixture(scope="module")
def benchmarks_process(tmp_path_factory):
    """What BENCHMARKS_PROCESS wrote: each USAGE_ERRORS case's exit code, stdout, stderr and
    recorded builds, and `throughput._fastest`'s figures. In a subprocess: benchmarks.throughput
    imports torch, which aborts a process where XLA has compiled."""
    path = tmp_path_factory.mktemp("benchmarks") / "results.json"
    cases = json.dumps([[script, argv] for script, argv, _ in USAGE_ERRORS])
    result = subprocess.run([sys.executable, "-c", BENCHMARKS_PROCESS, str(path), cases],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(path.read_text())


@pytest.mark.parametrize("case", range(len(USAGE_ERRORS)),
                         ids=[f"{script}-{' '.join(argv)}" for script, argv, _ in USAGE_ERRORS])
def test_benchmark_rejects_bad_input_before_building(benchmarks_process, case):
    script, _, message = USAGE_ERRORS[case]
    result = benchmarks_process["usage_errors"][case]
    assert result["code"] == 2, result
    assert result["stdout"] == ""
    assert result["built"] == []
    assert result["stderr"].splitlines()[-1].startswith(f"{script}.py: {message}")


def test_throughput_table_gives_timm_in_its_faster_memory_format(benchmarks_process):
    assert benchmarks_process["fastest"] == [
        "26.2 (channels_last)", "7.30 (contiguous)", "16.2", "—"]


def test_paired_counts_the_images_an_option_fixes_and_breaks_with_mcnemars_exact_p():
    import numpy as np

    from benchmarks.quantization import paired

    default = np.array([True] * 10 + [False] * 5)
    # Breaks all of the first 5, fixes none: the exact binomial p of 0 of 5 is 2 / 2**5.
    option = np.array([False] * 5 + [True] * 5 + [False] * 5)
    assert paired(default, option) == (0, 5, 0.0625)
    # Fixes 3 of the 5 the default got wrong, breaks 1: p = 2 * (1 + 4) / 2**4.
    option = np.array([True] * 9 + [False] + [True] * 3 + [False] * 2)
    assert paired(default, option) == (3, 1, 0.625)
    assert paired(default, default) == (0, 0, 1.0)
