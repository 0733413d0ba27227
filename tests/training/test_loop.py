"""The distributed steps: two replicas compute what one device computes on the whole batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attn import testing
from keras_attn.applications import get_model
from keras_attn.training import strategy as distribute
from keras_attn.training.loop import DistributedLoop

GLOBAL_BATCH = 8


def _one_step(strategy, sync_bn):
    keras.utils.set_random_seed(1)
    with strategy.scope():
        model = get_model("seresnet20_cifar", depths=(1, 1, 1), classes=4,
                          classifier_activation=None)
        if sync_bn:
            assert distribute.synchronize_batch_norm(model) == 9  # stem 1, blocks 6, shortcuts 2
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                      loss=keras.losses.CategoricalCrossentropy(from_logits=True))
        model.optimizer.build(model.trainable_variables)
        loss = keras.losses.CategoricalCrossentropy(from_logits=True, reduction=None)
        loop = DistributedLoop(strategy, model, loss, loss, GLOBAL_BATCH)
    images = testing.random_images((GLOBAL_BATCH, 32, 32, 3), seed=3)
    labels = tf.one_hot(np.arange(GLOBAL_BATCH) % 4, 4)
    batches = tf.data.Dataset.from_tensors((images, labels))
    loss_sum, correct, count = loop.train_step(iter(
        strategy.experimental_distribute_dataset(batches)))
    assert count == GLOBAL_BATCH
    return model, loss_sum


def _values(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


@pytest.fixture(scope="module")
def single_device():
    return _one_step(tf.distribute.OneDeviceStrategy("/cpu:0"), sync_bn=False)


def test_mirrored_step_with_synchronized_batch_norm_equals_one_device(single_device,
                                                                      mirrored_strategy):
    assert mirrored_strategy.num_replicas_in_sync == 2
    reference, reference_loss = single_device
    model, loss_sum = _one_step(mirrored_strategy, sync_bn=True)
    assert loss_sum == pytest.approx(reference_loss, rel=1e-5)
    for name, expected, actual in zip([w.path for w in reference.weights],
                                      _values(reference.weights), _values(model.weights)):
        # Trainable weights and the BatchNorm moving statistics alike.
        np.testing.assert_allclose(actual, expected, atol=1e-5, err_msg=name)


def test_without_synchronization_each_replica_normalises_its_own_half(single_device,
                                                                      mirrored_strategy):
    reference, _ = single_device
    model, _ = _one_step(mirrored_strategy, sync_bn=False)
    moving_means = [i for i, w in enumerate(model.weights) if w.path.endswith("moving_mean")]
    differences = [np.abs(_values(model.weights)[i] - _values(reference.weights)[i]).max()
                   for i in moving_means]
    assert max(differences) > 1e-4  # so the test above shows what sync_bn does
