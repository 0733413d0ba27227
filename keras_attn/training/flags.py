"""The training program's flags (absl).

`define_flags(flag_values)` defines them on absl's global `FLAGS` (the program) or on a fresh
`flags.FlagValues()` (tests, notebooks); `train.run` takes the parsed values.
"""

from absl import flags

__all__ = [
    "define_flags",
]

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
OPTIMIZERS = ("sgd", "adamw")


def define_flags(flag_values=flags.FLAGS):
    """Defines every flag of `keras-attn train` on `flag_values`.

    The flags follow the published ImageNet recipes they name: label smoothing (Szegedy et
    al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016,
    https://arxiv.org/abs/1512.00567); linear warm-up and `--scale_lr`'s lr x batch / 256
    (Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017,
    https://arxiv.org/abs/1706.02677); cosine decay (Loshchilov and Hutter, "SGDR", ICLR
    2017, https://arxiv.org/abs/1608.03983); AdamW's decoupled weight decay (Loshchilov and
    Hutter, ICLR 2019, https://arxiv.org/abs/1711.05101); MixUp (Zhang et al., ICLR 2018,
    https://arxiv.org/abs/1710.09412), CutMix (Yun et al., ICCV 2019,
    https://arxiv.org/abs/1905.04899) and RandAugment (Cubuk et al., 2020,
    https://arxiv.org/abs/1909.13719), through Keras' layers. The Training page of the
    documentation has their table.

    Args:
        flag_values: the `absl.flags.FlagValues` to define them on; absl's global `FLAGS`
            (the program's) by default, or a fresh `flags.FlagValues()` for a notebook or a
            test.

    Raises:
        absl.flags.DuplicateFlagError: `flag_values` has one of the flags already (a second
            call on the same `FlagValues`).

    Examples:
        >>> from absl import flags
        >>> flag_values = flags.FlagValues()
        >>> define_flags(flag_values)
        >>> flag_values(["train", "--model=seresnet20_cifar", "--dataset=digits", "--epochs=2"])
        ['train']
        >>> flag_values.model, flag_values.epochs, flag_values.batch_size, flag_values.lr
        ('seresnet20_cifar', 2, 128, 0.1)
    """

    def define(kind, name, default, help_text, enum_values=None):
        if kind == "enum":  # DEFINE_enum takes its values before the help text
            flags.DEFINE_enum(name, default, enum_values, help_text, flag_values=flag_values)
        else:
            getattr(flags, f"DEFINE_{kind}")(name, default, help_text, flag_values=flag_values)

    # What to train.
    define("string", "model", None, "Registry name of the network (keras-attn models).")
    define("string", "weights", "none",
           "Initial weights: 'none', 'imagenet', a published tag, or a .weights.h5 / timm "
           "checkpoint file.")
    define("boolean", "freeze_backbone", False,
           "Train only the classifier (fine-tuning); the rest keeps its weights and statistics.")
    # Data.
    define("string", "dataset", None,
           "'digits' (scikit-learn's handwritten digits, no download) or a TFDS name (needs "
           "tensorflow-datasets). Use either --dataset or --data_dir.")
    define("string", "data_dir", None,
           "Image folder with one sub-folder per class. Validation: a val/ folder with the same "
           "classes (and then a train/ folder or the class folders beside val/), else "
           "--val_split.")
    define("float", "val_split", 0.2,
           "Fraction of the images held out for validation when the data has no split.")
    define("integer", "image_size", None,
           "Input height and width; default: the network's (32 for digits).")
    # Optimisation.
    define("integer", "batch_size", 128, "Global batch size, divided among the replicas.")
    define("integer", "epochs", 30, "Number of epochs.")
    define("integer", "steps_per_epoch", None,
           "At most this many steps per epoch; default: one pass over the training images.")
    define("enum", "optimizer", "sgd", "sgd (Nesterov momentum 0.9) or adamw.",
           enum_values=OPTIMIZERS)
    define("float", "lr", 0.1, "Peak learning rate, reached after the warm-up, then cosine decay.")
    define("boolean", "scale_lr", False, "Multiply --lr by global batch size / 256.")
    define("float", "warmup_epochs", 1.0, "Linear learning-rate warm-up, in epochs.")
    define("float", "weight_decay", 5e-5,
           "Decoupled weight decay (not applied to BatchNorm parameters and biases).")
    define("float", "label_smoothing", 0.1, "Label smoothing of the cross-entropy.")
    define("float", "mixup", 0.0, "MixUp alpha (Keras' MixUp); 0 turns it off.")
    define("float", "cutmix", 0.0,
           "CutMix factor (Keras' CutMix); 0 turns it off. With --mixup, each batch uses one "
           "of the two at random.")
    define("integer", "randaugment", 0, "RandAugment operations per image; 0 turns it off.")
    define("float", "randaugment_factor", 0.5, "RandAugment magnitude, in [0, 1].")
    define("float", "ema", 0.0,
           "Momentum of an exponential moving average of the weights (e.g. 0.9998); 0 turns it "
           "off. Validation and the saved weights then use the average.")
    # Performance and distribution.
    define("boolean", "mixed_precision", False, "float16 on GPU, bfloat16 on TPU and CPU.")
    define("boolean", "jit_compile", False,
           "Compile the training step with XLA (not with --sync_bn on several replicas).")
    define("boolean", "sync_bn", False,
           "Synchronise BatchNorm statistics across replicas (BatchNormalization("
           "synchronized=True)).")
    define("enum", "strategy", "auto", "tf.distribute strategy; auto picks TPU, multi-worker "
           "(TF_CONFIG), mirrored (several GPUs) or one device.", enum_values=STRATEGIES)
    define("string", "tpu", None, "TPU name or address for --strategy=tpu.")
    # Outputs and fault tolerance.
    define("string", "model_dir", None,
           "Where the backup, checkpoints, config.json, TensorBoard logs, metrics.csv and the "
           "plot go.")
    define("boolean", "resume", True,
           "Resume from the backup in --model_dir; --noresume refuses to overwrite one.")
    define("integer", "backup_steps", 100,
           "Back up the training state every this many steps, and at every epoch's end.")
    define("string", "export_dir", None,
           "After training, export the best weights as a SavedModel for TF Serving into "
           "<export_dir>/<next version>/ (keras_attn.export.saved_model, verified).")
    define("integer", "seed", 0, "Seed of the initial weights, the split and the data order.")
