"""Command-line checks shared by the benchmarks: bad input stops before any model is built."""

from keras_attn.applications import specs


def check(parser, args, minimums):
    """Exits through `parser.error` on an unknown network name or a number below its minimum.

    Args:
        parser: the `argparse.ArgumentParser` that parsed `args`.
        args: the parsed namespace; every one of `args.names` must be a registered network.
        minimums: `{flag: smallest value}` for the integer flags (attribute names).
    """
    for flag, minimum in minimums.items():
        if getattr(args, flag) < minimum:
            parser.error(f"--{flag} must be >= {minimum}; received {getattr(args, flag)}")
    for name in args.names:
        try:
            specs.get_spec(name)
        except ValueError as error:
            parser.error(str(error))


def split_choices(parser, flag, value, choices, noun):
    """`value`, a comma-separated flag, as a list; exits through `parser.error` naming the first
    item not in `choices` (`noun` says what an item is: "implementation")."""
    items = value.split(",")
    for item in items:
        if item not in choices:
            parser.error(f"{flag}: unknown {noun} {item!r}; expected one of {', '.join(choices)}")
    return items
