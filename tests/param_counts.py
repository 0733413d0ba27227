"""Full-size parameter counts that build three blocks per stage, not every block.

Building the whole registry at full size costs thousands of blocks (2,461 for the 82 rows;
resnetrs420 alone has 139), most of them copies: within a stage every block after the first
has the same widths, stride 1 and an identity shortcut. So a ResNet-family row is built with
at most three blocks per stage, and each further block adds what the stage's third one has.
That the second and third blocks of a stage agree is checked on every count, so a layout
whose blocks change along a stage fails here rather than being miscounted; the counts are
then compared with timm's (tests/applications/test_param_counts.py), which would catch a
block missed by the stage prefixes below.
"""

import keras
import numpy as np

from keras_attn.applications import get_model, registry, specs

_BUILT_PER_STAGE = 3


def count_parameters(name, counted=None, **overrides):
    """`count_params()` of the registry network `name` with 1000 classes (and `overrides`).

    Args:
        name: a registry name.
        counted: `counted(weight) -> bool`: count only these weights (default: all of them,
            as `count_params()` does).
        **overrides: as `get_model` takes them (not `depths`: the row's own are counted).

    Returns:
        The count, an int.

    Raises:
        AssertionError: two blocks of a stage after its first differ in parameters.
    """
    spec = specs.get_spec(name)
    depths = getattr(spec, "depths", None)
    if depths is None or max(depths) <= _BUILT_PER_STAGE:
        if counted is None:
            return registry.count_parameters(name, **overrides)
        depths = None
    built = None if depths is None else [min(depth, _BUILT_PER_STAGE) for depth in depths]
    with keras.StatelessScope():  # shapes only, as registry.count_parameters builds
        model = get_model(name, **overrides, **({} if built is None else {"depths": built}))
        weights = [w for w in model.weights if counted is None or counted(w)]
        total = sum(int(np.prod(w.shape)) for w in weights)
        for stage, depth in enumerate(depths or (), start=1):
            if depth <= _BUILT_PER_STAGE:
                continue
            second, third = (
                sum(int(np.prod(w.shape)) for w in weights
                    if w.path.startswith(f"stage{stage}_block{block}_"))
                for block in (2, 3))
            assert second == third > 0, (
                f"{name}: stage {stage}'s blocks 2 and 3 have {second:,} and {third:,} "
                "parameters; the count assumes the blocks after a stage's first are alike")
            total += (depth - _BUILT_PER_STAGE) * third
    del model
    keras.backend.clear_session()
    return total
