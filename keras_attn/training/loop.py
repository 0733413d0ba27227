"""The distributed training and evaluation steps: one custom loop for every strategy.

`model.fit` fails under `MultiWorkerMirroredStrategy` in Keras 3 (keras-team/keras#20585:
the trainer reduces the data batch and then the metrics across workers). This loop does
what works everywhere: the step runs in `strategy.run`, the loss is averaged over the
global batch (`tf.nn.compute_average_loss`), the Keras optimizer applies the gradients in the
replica context (it all-reduces them), and the step returns sums that `strategy.reduce`
adds up; metrics are kept on the host.
"""

import warnings

import tensorflow as tf

__all__ = [
    "DistributedLoop",
]


class DistributedLoop:
    """Training and evaluation steps of a compiled Keras model under a strategy.

    A custom loop rather than `model.fit`, which fails under `MultiWorkerMirroredStrategy`
    in Keras 3 (the module's docstring says why); the same loop runs on one device, on
    several and on several machines.

    Args:
        strategy: the `tf.distribute.Strategy` whose scope built `model`.
        model: a Keras model returning logits, compiled (it owns the optimizer).
        loss: a Keras loss with `reduction=None` (per example), on one-hot labels.
        eval_loss: the same without training-only terms (label smoothing).
        global_batch_size: examples per step across all replicas.
        jit_compile: compile each replica's forward and backward pass with XLA.

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> import tensorflow as tf
        >>> strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        >>> with strategy.scope():
        ...     model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        ...     model.compile(optimizer=keras.optimizers.SGD(0.1))
        ...     loop = DistributedLoop(
        ...         strategy, model,
        ...         loss=keras.losses.CategoricalCrossentropy(from_logits=True, reduction=None),
        ...         eval_loss=keras.losses.CategoricalCrossentropy(from_logits=True,
        ...                                                        reduction=None),
        ...         global_batch_size=8)
        >>> x = np.random.default_rng(0).random((16, 4), dtype=np.float32)
        >>> y = np.eye(3, dtype=np.float32)[np.arange(16) % 3]           # one-hot labels
        >>> batches = strategy.experimental_distribute_dataset(
        ...     tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
        >>> loss_sum, correct, count = loop.train_step(iter(batches))
        >>> count
        8.0
        >>> sorted(loop.evaluate(batches))
        ['val_accuracy', 'val_loss', 'val_top5']
    """

    def __init__(self, strategy, model, loss, eval_loss, global_batch_size, jit_compile=False):
        self.strategy = strategy
        self.model = model
        self.optimizer = model.optimizer
        self.loss = loss
        self.eval_loss = eval_loss
        self.global_batch_size = global_batch_size
        self._gradients = tf.function(self._gradients_of, jit_compile=True) if jit_compile else (
            self._gradients_of
        )
        self._train_step = tf.function(self._distributed_train_step)
        self._evaluate = tf.function(self._distributed_evaluate)

    def _gradients_of(self, images, labels):
        with tf.GradientTape() as tape:
            logits = self.model(images, training=True)
            per_example = self.loss(labels, logits)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.model.trainable_variables)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(labels, -1)), tf.float32)
        return gradients, tf.reduce_sum(per_example), tf.reduce_sum(correct)

    def _replica_train_step(self, images, labels):
        gradients, loss_sum, correct = self._gradients(images, labels)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        return loss_sum, correct, tf.cast(tf.shape(images)[0], tf.float32)

    def _distributed_train_step(self, iterator):
        results = self.strategy.run(self._replica_train_step, args=next(iterator))
        return [self.strategy.reduce("SUM", result, axis=None) for result in results]

    def train_step(self, iterator):
        """One optimisation step on the next global batch.

        Args:
            iterator: an iterator over a distributed dataset of `(images, one-hot labels)`
                (`iter(strategy.experimental_distribute_dataset(...))`).

        Returns:
            Host floats `(loss_sum, correct, count)` summed over the global batch: the sum
            of the per-example training losses, the number of top-1 hits, the number of
            examples.
        """
        return tuple(float(value) for value in self._train_step(iterator))

    def _replica_eval_step(self, images, labels):
        logits = self.model(images, training=False)
        targets = tf.argmax(labels, -1)
        k = min(5, labels.shape[-1])
        return (
            tf.reduce_sum(self.eval_loss(labels, logits)),
            tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1), targets), tf.float32)),
            tf.reduce_sum(tf.cast(tf.math.in_top_k(targets, tf.cast(logits, tf.float32), k),
                                  tf.float32)),
            tf.cast(tf.shape(images)[0], tf.float32),
        )

    def _distributed_evaluate(self, dataset):
        totals = [tf.zeros((), tf.float32) for _ in range(4)]
        for images, labels in dataset:
            results = self.strategy.run(self._replica_eval_step, args=(images, labels))
            totals = [total + self.strategy.reduce("SUM", result, axis=None)
                      for total, result in zip(totals, results)]
        return totals

    def evaluate(self, dataset):
        """Loss, top-1 and top-5 accuracy over a distributed dataset (every example once).

        Args:
            dataset: a distributed dataset of `(images, one-hot labels)`; batches may be
                partial.

        Returns:
            `{"val_loss", "val_accuracy", "val_top5"}`: means over the examples, as floats
            (top-5 is top-k with k = the number of classes when there are fewer than 5).
        """
        with warnings.catch_warnings():
            # tf.data notes, when a distributed dataset is iterated in a tf.function, that its
            # options are read at trace time; they are (the defaults), so the note is noise.
            warnings.filterwarnings("ignore", message="To make it possible to preserve tf.data")
            totals = self._evaluate(dataset)
        loss_sum, top1, top5, count = (float(v) for v in totals)
        count = max(count, 1.0)
        return {"val_loss": loss_sum / count, "val_accuracy": top1 / count,
                "val_top5": top5 / count}
