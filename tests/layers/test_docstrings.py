"""The examples in the layers' docstrings run as written and show what they print."""

import doctest
import importlib
import pkgutil

import pytest

import keras_attn.layers

MODULES = sorted(
    info.name for info in pkgutil.iter_modules(keras_attn.layers.__path__, "keras_attn.layers.")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    results = doctest.testmod(importlib.import_module(name), report=True)
    assert results.failed == 0


def test_every_public_layer_has_an_example():
    finder = doctest.DocTestFinder()
    without = [
        name for name in keras_attn.layers.__all__
        if not any(test.examples for test in finder.find(getattr(keras_attn.layers, name)))
    ]
    assert without == []
