"""Regenerates the tables made from the code: the README's families, the model table (builds
every network, ~2 min), what the SE gates cost, the published weights (from
weights/manifest.json), the attention kinds (from keras_attn.attention) and the training
program's flags (from keras_attn.training.flags).

    python tools/update_readme.py

Each table goes into the file that holds its markers (`tools.sections.find`: README.md or a page
under docs/); `tests/test_readme.py` and `tests/test_docs.py` fail when one differs from what
this writes.
"""

import os
import sys

if __package__ in (None, ""):  # run as a script: the repository root holds `tools`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_attn.applications import list_models, registry  # noqa: E402
from tools import sections, tables  # noqa: E402


def generated_tables():
    """`{section name: table}` of every table this command writes."""
    counts = {}
    names = list_models()
    for index, name in enumerate(names, start=1):
        counts[name] = registry.count_parameters(name)
        print(f"[{index}/{len(names)}] {name}: {counts[name]:,}", file=sys.stderr)
    ungated = {name: registry.count_parameters(name, gate=None)
               for name in tables.GATE_OVERHEAD_NAMES}
    return {
        "families": tables.families_table(counts),
        "models": tables.models_table(counts),
        "overhead": tables.gate_overhead_table(counts, ungated),
        "weights": tables.weights_table(),
        "attention": tables.attention_table(),
        "training-flags": tables.training_flags_table(),
    }


def main():
    sections.update(generated_tables())


if __name__ == "__main__":
    main()
