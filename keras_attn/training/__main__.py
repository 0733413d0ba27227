"""Train or fine-tune a keras_attn network: the same program as `keras-attn train`.

USAGE: python -m keras_attn.training --model=NAME (--dataset=NAME | --data_dir=DIR)
    --model_dir=DIR [flags]
"""

import sys

from keras_attn.cli import main

if __name__ == "__main__":
    # Through the command line's main: SIGTERM then unwinds the run, so its cleanup runs.
    sys.exit(main(["train", *sys.argv[1:]]))
