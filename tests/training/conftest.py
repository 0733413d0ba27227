import os

import pytest
from absl import flags

from keras_attn.training.flags import define_flags

# A network and data that train in seconds on a CPU.
QUICK = ["--dataset=digits", "--model=seresnet20_cifar", "--batch_size=32", "--epochs=1",
         "--steps_per_epoch=2", "--warmup_epochs=0"]


@pytest.fixture
def training_flags(tmp_path):
    """Parsed training flags: QUICK (less the flags named in `without`), a model_dir in
    tmp_path, then the test's arguments."""

    def parse(*args, model_dir=None, without=()):
        values = flags.FlagValues()
        define_flags(values)
        quick = [arg for arg in QUICK if arg[2:].split("=")[0] not in without]
        values(["train", *quick, f"--model_dir={model_dir or os.path.join(tmp_path, 'run')}",
                *args])
        return values

    return parse
