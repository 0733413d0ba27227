"""The training program: `keras-attn train` / `python -m keras_attn.training`.

- `flags`: the absl flags (`define_flags`).
- `train`: `run(flags, strategy_override=None)` and the absl `main`.
- `data`: digits, image folders and TFDS on tf.data, with the augmentations.
- `strategy`: picking the tf.distribute strategy; synchronised BatchNorm.
- `loop`: the distributed training and evaluation steps.
- `callbacks`: backup and restore, checkpoints, metrics CSV and plot.
"""
