"""The package's docstrings: every example runs as written (doctest), and every public name says
what it takes, returns and raises, with an example.

Examples that would download weights or run for minutes are shown as plain code (no `>>>`
prompts), which doctest does not run; docs/ and the other tests run those paths.
"""

import ast
import doctest
import importlib
import inspect
import pathlib
import pkgutil
import re
import textwrap

import pytest

import keras_attn

DOCS_API = pathlib.Path(__file__).resolve().parent.parent / "docs" / "api"
MODULES = sorted(info.name for info in pkgutil.walk_packages(keras_attn.__path__, "keras_attn.")
                 if not info.name.endswith("__main__"))
# The modules whose `__all__` the API reference (docs/api/) lists.
API_MODULES = (
    "keras_attn", "keras_attn.layers", "keras_attn.attention", "keras_attn.applications",
    "keras_attn.convert", "keras_attn.weights", "keras_attn.weights.fetch", "keras_attn.data",
    "keras_attn.optimize", "keras_attn.inspect", "keras_attn.export", "keras_attn.training.train",
    "keras_attn.training.flags", "keras_attn.training.data", "keras_attn.training.strategy",
    "keras_attn.training.loop", "keras_attn.training.callbacks", "keras_attn.testing",
)
FENCED_PYTHON = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """Examples write files: into a folder of their own, with a Keras cache of their own."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


@pytest.mark.parametrize("name", ["keras_attn", *MODULES])
def test_docstring_examples_run(name, scratch):
    module = importlib.import_module(name)
    results = doctest.testmod(module, report=True,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert results.failed == 0


def public_names(modules=API_MODULES):
    """`(module name, name, object)` for every name of every public module's `__all__` that is
    not a module itself."""
    found = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if not inspect.ismodule(value):
                found.append((module_name, name, value))
    return found


def _parameters(value):
    if inspect.isclass(value) and "__init__" not in vars(value):
        return []  # takes its parent's arguments (Keras', ValueError's): its docstring says so
    function = value.__init__ if inspect.isclass(value) else value
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return []
    return [name for name in signature.parameters if name not in ("self", "cls")]


def _returns_a_value(function):
    try:
        tree = ast.parse(inspect.getsource(function).strip())
    except (OSError, TypeError, SyntaxError):
        return False
    body = tree.body[0]
    nested = {id(node) for child in ast.walk(body) if child is not body
              and isinstance(child, (ast.FunctionDef, ast.Lambda, ast.AsyncFunctionDef))
              for node in ast.walk(child)}
    return any(isinstance(node, (ast.Return, ast.Yield)) and getattr(node, "value", None)
               is not None and id(node) not in nested for node in ast.walk(body))


def _missing_sections(value):
    doc = inspect.getdoc(value) or ""
    missing = []
    if not doc:
        return ["docstring"]
    if "Examples:" not in doc:
        missing.append("Examples")
    if _parameters(value) and not any(section in doc for section in ("Args:", "Attributes:")):
        missing.append("Args")
    if inspect.isfunction(value) and _returns_a_value(value) and not any(
            section in doc for section in ("Returns:", "Yields:")):
        missing.append("Returns")
    return missing


def test_public_names_document_arguments_returns_and_an_example():
    # Every module of the API reference: the library, the training program's modules, the
    # weights' plumbing and the test helpers alike.
    lacking = {f"{module}.{name}": missing for module, name, value in public_names()
               if inspect.isclass(value) or inspect.isfunction(value)
               if (missing := _missing_sections(value))}
    assert lacking == {}


def test_every_public_name_of_the_api_reference_has_a_docstring():
    assert [f"{module}.{name}" for module, name, value in public_names()
            if (inspect.isclass(value) or inspect.isfunction(value))
            and not inspect.getdoc(value)] == []


def test_every_module_of_the_api_reference_defines_its_public_api():
    assert [name for name in API_MODULES
            if not hasattr(importlib.import_module(name), "__all__")] == []
    # and the reference's pages show each of them (mkdocstrings lists a module's `__all__`)
    pages = "".join(path.read_text() for path in DOCS_API.glob("*.md"))
    shown = set(re.findall(r"^::: ([\w.]+)$", pages, re.M))
    assert [name for name in API_MODULES if name not in shown
            and name not in ("keras_attn",)] == []


def _fenced_examples():
    """`(where, code)` for every fenced python block in the package's docstrings: examples
    that need a download, a file or minutes, which doctest does not run."""
    found = []
    for name in ["keras_attn", *MODULES]:
        module = importlib.import_module(name)
        for test in doctest.DocTestFinder(exclude_empty=False).find(module):
            for _indent, code in FENCED_PYTHON.findall(test.docstring or ""):
                found.append((test.name, textwrap.dedent(code)))
    return found


def test_fenced_docstring_examples_compile():
    examples = _fenced_examples()
    assert len(examples) >= 15  # the constructors' template, the exports, inspect, ...
    for where, code in examples:
        compile(code, where, "exec")
