"""`python -m keras_attn.training --model=... --dataset=... --model_dir=...`."""

from keras_attn.training.train import entry_point

if __name__ == "__main__":
    entry_point()
