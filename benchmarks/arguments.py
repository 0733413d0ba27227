"""Command-line checks shared by the benchmarks: bad input stops before any model is built."""

from keras_attn.applications import specs


def check(parser, args, counts=(), names=True):
    """Exits through `parser.error` on an unknown network name or a count flag below 1.

    Args:
        parser: the `argparse.ArgumentParser` that parsed `args`.
        args: the parsed namespace.
        counts: flags (attribute names) that must be integers >= 1.
        names: whether `args.names` must all be registered networks.
    """
    for flag in counts:
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be >= 1; received {getattr(args, flag)}")
    for name in args.names if names else ():
        try:
            specs.get_spec(name)
        except ValueError as error:
            parser.error(str(error))
