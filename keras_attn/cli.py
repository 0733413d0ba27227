"""`keras-attn`: the command line.

    keras-attn models [PATTERN] [--params] [--markdown]
"""

import argparse
import os
import sys


def _models(args):
    from keras_attn.applications import registry, specs

    if args.markdown and args.pattern:
        print("--markdown renders the whole table; drop the pattern.", file=sys.stderr)
        return 2
    names = registry.list_models(args.pattern)
    if not names:
        print(f"No model matches {args.pattern!r}.", file=sys.stderr)
        return 1
    counts = {}
    if args.params or args.markdown:
        from keras.utils import Progbar

        progress = Progbar(len(names), unit_name="model", verbose=1 if sys.stderr.isatty() else 2)
        for index, name in enumerate(names, start=1):
            counts[name] = registry.count_parameters(name)
            progress.update(index)
    if args.markdown:
        print(registry.markdown_table(counts), end="")
        return 0
    for name in names:
        spec = specs.SPECS[name]
        params = f"{counts[name]:>13,}" if counts else ""
        print(f"{name:28s}{params}  {spec.default_size:>4d}  {spec.family:11s}  "
              f"{specs.PAPERS[spec.paper].citation}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-attn",
        description="Channel-attention CNNs for Keras 3 (SE, SK, Split-Attention).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    models = commands.add_parser("models", help="list the networks of the registry")
    models.add_argument("pattern", nargs="?", help="shell pattern, e.g. 'resnest*'")
    models.add_argument("--params", action="store_true", help="build each and count parameters")
    models.add_argument(
        "--markdown", action="store_true", help="print the README's model table (builds all)"
    )
    models.set_defaults(handler=_models)
    return parser


def main(argv=None):
    # TensorFlow's C++ start-up messages drown the command's output; users can still opt in.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
