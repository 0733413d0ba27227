"""Argument checks: each raises a `ValueError` that names the argument and quotes the value."""

import math
import numbers


def is_integer(value):
    """Whether `value` is an integer, a Python or NumPy one; bools are not.

    Examples:
        >>> is_integer(3), is_integer(3.0), is_integer(True)
        (True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(name, value, minimum=1):
    """`value` as a Python int; raises a `ValueError` naming `name` unless it is an integer
    (NumPy's included, bools not) >= `minimum`.

    Examples:
        >>> check_positive_int("filters", 0)
        Traceback (most recent call last):
        ...
        ValueError: `filters` must be an integer >= 1; received filters=0.
    """
    if not is_integer(value) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; received {name}={value!r}.")
    return int(value)


def check_odd_int(name, value, minimum=1):
    """`value` as a Python int; raises a `ValueError` naming `name` unless it is an odd integer
    >= `minimum` (a kernel that has a centre pixel)."""
    if not is_integer(value) or value < minimum or value % 2 == 0:
        raise ValueError(
            f"`{name}` must be an odd integer >= {minimum}; received {name}={value!r}."
        )
    return int(value)


def check_positive_number(name, value):
    """`value` as a Python number (an int stays an int); raises a `ValueError` naming `name`
    unless it is a finite real number > 0 (NumPy's included, bools not)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not (value > 0 and math.isfinite(value))):
        raise ValueError(f"`{name}` must be a finite number > 0; received {name}={value!r}.")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def check_reduction(rd_ratio, rd_channels, rd_divisor):
    """Validates timm's attention-width arguments; returns them as Python numbers."""
    return (
        check_positive_number("rd_ratio", rd_ratio),
        None if rd_channels is None else check_positive_int("rd_channels", rd_channels),
        check_positive_int("rd_divisor", rd_divisor),
    )


def check_cardinality(cardinality, filters):
    """`cardinality` as a Python int; raises unless it is a positive integer that divides
    `filters`."""
    cardinality = check_positive_int("cardinality", cardinality)
    if filters % cardinality:
        raise ValueError(
            f"`cardinality` must divide `filters`; received cardinality={cardinality} "
            f"with filters={filters}."
        )
    return cardinality


def check_channels_last(layer_name, input_shape):
    """The channel count of a rank-4 NHWC input shape; raises unless the shape is one, with a
    known channel count."""
    if len(input_shape) != 4:
        raise ValueError(
            f"{layer_name} expects a rank-4 input (batch, height, width, channels); "
            f"received input_shape={tuple(input_shape)}."
        )
    if input_shape[-1] is None:
        raise ValueError(
            f"{layer_name} needs a known channel count (the last axis); "
            f"received input_shape={tuple(input_shape)}."
        )
    return int(input_shape[-1])
