"""keras_attn.layers.kernels reads the CPU as the operating system reports it."""

import pathlib

import pytest

from keras_attn.layers import kernels

CPUINFO = pathlib.Path("/proc/cpuinfo")


@pytest.mark.skipif(not CPUINFO.exists(), reason="Linux's /proc/cpuinfo")
def test_avx512_detection_agrees_with_proc_cpuinfo():
    flags = {word for line in CPUINFO.read_text().splitlines() if line.startswith("flags")
             for word in line.split(":", 1)[1].split()}
    assert kernels.cpu_has_avx512() == ("avx512f" in flags)


@pytest.mark.parametrize("onednn, avx512", [(True, True), (True, False), (False, True)])
def test_onednn_on_avx512_needs_both(monkeypatch, onednn, avx512):
    monkeypatch.setattr(kernels, "tensorflow_onednn_enabled", lambda: onednn)
    monkeypatch.setattr(kernels, "cpu_has_avx512", lambda: avx512)
    assert kernels.tensorflow_onednn_on_avx512() == (onednn and avx512)
