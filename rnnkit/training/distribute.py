"""`tf.distribute` strategies by name, and a trainer that works under all of them.

Keras 3's own `fit` fails under `MultiWorkerMirroredStrategy` ("Attempt to
convert a value (PerReplica...)", keras-team/keras#20585). `DistributedTrainer`
is a small training loop written with `strategy.run` and explicit reductions
that drives the same Keras callbacks as `fit` (resume, checkpoints, history,
TensorBoard, progress bar), so multi-worker training works for Keras 3 models.

Example (on each worker, with TF_CONFIG set):
    >>> strategy = get_strategy("multi_worker")              # doctest: +SKIP
    >>> with strategy.scope():                               # doctest: +SKIP
    ...     model = build_and_compile()
    >>> fit(model, train_ds, epochs=3, run_dir="runs/mw", strategy=strategy)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os

import keras
import numpy as np

from rnnkit.errors import UsageError

logger = logging.getLogger(__name__)

STRATEGY_NAMES = ("default", "mirrored", "multi_worker")
COLLECTIVES = ("auto", "ring", "nccl")


def get_strategy(name: str = "default", collective: str = "auto"):
    """Returns a `tf.distribute.Strategy` by name.

    Args:
        name: "default" (one device, no distribution), "mirrored" (all local GPUs,
            or the CPU) or "multi_worker" (`MultiWorkerMirroredStrategy`; the
            cluster comes from the `TF_CONFIG` environment variable).
        collective: all-reduce implementation for "multi_worker": "auto", "ring"
            (gRPC, works on CPU) or "nccl" (GPUs).

    Raises:
        UsageError: for an unknown name, a missing or malformed `TF_CONFIG`, or a
            multi-worker strategy asked for after TensorFlow has started.

    Limitation: `MultiWorkerMirroredStrategy` must be created before any other
    TensorFlow work in the process (before building a model), so call this first.
    """
    import tensorflow as tf

    if not isinstance(name, str) or name.strip().lower() not in STRATEGY_NAMES:
        raise UsageError(
            f"Unknown distribution strategy. Expected one of {list(STRATEGY_NAMES)}. "
            f"Received: strategy={name!r}"
        )
    name = name.strip().lower()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()

    if collective not in COLLECTIVES:
        raise UsageError(
            f"Unknown collective implementation. Expected one of {list(COLLECTIVES)}. "
            f"Received: collective={collective!r}"
        )
    _check_tf_config(os.environ.get("TF_CONFIG"))
    implementation = {
        "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
        "ring": tf.distribute.experimental.CommunicationImplementation.RING,
        "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
    }[collective]
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=implementation
            )
        )
    except RuntimeError as error:
        raise UsageError(
            "The multi-worker strategy must be created before TensorFlow does any "
            "other work in this process. Expected get_strategy('multi_worker') to be "
            f"called first, before building the model. Received: {error}"
        ) from error


def _check_tf_config(value: str | None) -> None:
    expected = (
        'Expected TF_CONFIG like {"cluster": {"worker": ["host:port", ...]}, '
        '"task": {"type": "worker", "index": 0}}.'
    )
    if not value:
        raise UsageError(
            f"The multi_worker strategy needs the TF_CONFIG environment variable. "
            f"{expected} Received: TF_CONFIG unset"
        )
    try:
        config = json.loads(value)
        workers = config["cluster"]["worker"]
        task = config["task"]
        index = int(task["index"])
        kinds = config["cluster"].get(task["type"], [])
    except (ValueError, KeyError, TypeError) as error:
        raise UsageError(f"TF_CONFIG is malformed. {expected} Received: {value}") from (
            error
        )
    if not workers or index >= len(kinds):
        raise UsageError(
            f"TF_CONFIG's task index is not in its cluster. {expected} Received: {value}"
        )


def is_multi_worker(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def worker_identity(strategy) -> tuple[bool, str]:
    """Returns (is_chief, a short name such as "worker-1") for `strategy`'s task."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True, "chief"
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    is_chief = task_type == "chief" or (
        task_type == "worker" and task_id == 0 and not has_chief
    )
    return is_chief, f"{task_type}-{task_id}"


def rebuild_in_scope(model, strategy):
    """Returns `model` rebuilt (same weights, same compile settings) in `strategy`.

    Variables must be created inside `strategy.scope()` to be mirrored. A model
    already built there is returned as is; a zero-argument callable is called in
    the scope and must return a compiled model.
    """
    if callable(model) and not isinstance(model, keras.Model):
        with strategy.scope():
            built = model()
        if (
            not isinstance(built, keras.Model)
            or getattr(built, "optimizer", None) is None
        ):
            raise UsageError(
                "The model builder must return a compiled keras.Model. "
                f"Received: {type(built).__name__}"
            )
        return built
    if not isinstance(model, keras.Model):
        raise UsageError(
            f"Expected a compiled keras.Model or a function returning one. "
            f"Received: {type(model).__name__}"
        )
    if getattr(model, "optimizer", None) is None:
        raise UsageError(
            "The model must be compiled before training. Expected model.compile(...) "
            f"to have been called. Received: model {model.name!r}, not compiled"
        )
    variable = model.weights[0] if model.weights else None
    if variable is not None and _created_in(variable, strategy):
        return model
    try:
        with strategy.scope():
            clone = keras.models.clone_model(model)
            clone.set_weights(model.get_weights())
            clone.compile_from_config(model.get_compile_config())
    except (NotImplementedError, TypeError, ValueError) as error:
        raise UsageError(
            "The model could not be rebuilt inside the distribution strategy's "
            "scope. Expected a functional/Sequential model, a model built in "
            "strategy.scope(), or a function returning a compiled model. "
            f"Received: {error}"
        ) from error
    return clone


def _created_in(variable, strategy) -> bool:
    value = getattr(variable, "value", variable)
    tf_strategy = getattr(value, "_distribute_strategy", None)
    return tf_strategy is strategy


class DistributedTrainer:
    """A training loop written with `strategy.run`, for every `tf.distribute` strategy.

    Each step runs the forward and backward pass on every replica, sums the
    per-replica gradients with one all-reduce (`strategy.reduce`), and applies the
    summed gradient once with the model's Keras optimizer in cross-replica
    context, so clipping (`clipnorm`, `clipvalue`, `global_clipnorm`) acts on the
    full-batch gradient exactly as on one machine. The per-replica loss is scaled
    by local/global batch size, so the sum is the global mean. The global norm of
    the gradient (before clipping) is reported as `grad_norm` at every step.

    Args:
        model: a compiled model whose variables were created in `strategy.scope()`
            (see `rebuild_in_scope`), with a single loss.
        strategy: the `tf.distribute.Strategy`.

    Limitation: it reports the loss (and `val_loss`), not the compiled metrics,
    supports single-output models with one loss, and takes no sample weights.
    """

    def __init__(self, model: keras.Model, strategy) -> None:
        import tensorflow as tf

        self.model = model
        self.strategy = strategy
        loss = model.loss
        if loss is None or isinstance(loss, dict | list | tuple):
            raise UsageError(
                "The distributed trainer supports one loss for one output. Expected "
                f"model.compile(loss=<one loss>). Received: loss={loss!r}"
            )
        self._loss_fn = keras.losses.get(loss) if isinstance(loss, str) else loss
        self._tf = tf
        self._train_step = None
        self._test_step = None

    def _distribute(self, data, batch_size, drop_remainder):
        tf = self._tf
        if data is None:
            return None
        if isinstance(data, tuple | list):
            if batch_size is None:
                raise UsageError(
                    "Arrays need a batch size. Expected batch_size=<global batch>. "
                    "Received: batch_size=None"
                )
            data = tf.data.Dataset.from_tensor_slices(tuple(data)).batch(
                int(batch_size), drop_remainder=drop_remainder
            )
        if not isinstance(data, tf.data.Dataset):
            raise UsageError(
                "The distributed trainer reads a batched tf.data.Dataset of (x, y) "
                "or an (x, y) tuple of arrays. Received: "
                f"{type(data).__name__}"
            )
        options = tf.data.Options()
        # Every worker sees the same global batches and keeps its slice of each,
        # so the run is the same whatever the number of workers.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return data.with_options(options)

    def _build_steps(self) -> None:
        tf = self._tf
        strategy, model, loss_fn = self.strategy, self.model, self._loss_fn
        sum_ = tf.distribute.ReduceOp.SUM

        def replica_loss(x, y, training):
            context = tf.distribute.get_replica_context()
            local = tf.cast(tf.shape(y)[0], "float32")
            total = context.all_reduce(sum_, local)
            y_pred = model(x, training=training)
            # A loss function (not a Loss object) returns per-sample values;
            # the mean matches Keras' default "sum_over_batch_size" reduction.
            loss = tf.reduce_mean(loss_fn(y, y_pred)) * local / tf.maximum(total, 1.0)
            if training and model.losses:
                loss += tf.add_n(model.losses) / strategy.num_replicas_in_sync
            return loss

        def train_replica(x, y):
            with tf.GradientTape() as tape:
                loss = replica_loss(x, y, training=True)
            return loss, tape.gradient(loss, model.trainable_variables)

        @tf.function
        def train_step(batch):
            if len(batch) != 2:
                raise UsageError(
                    "The distributed trainer reads (x, y) batches; sample weights "
                    f"are not supported. Received: batches of {len(batch)} parts"
                )
            x, y = batch[0], batch[1]
            losses, grads = strategy.run(train_replica, args=(x, y))
            loss = strategy.reduce(sum_, losses, axis=None)
            grads = [
                None if g is None else strategy.reduce(sum_, g, axis=None)
                for g in grads
            ]
            norm = tf.linalg.global_norm([g for g in grads if g is not None])
            # In cross-replica context the Keras optimizer skips its own
            # all-reduce and updates every mirrored copy with the summed gradient.
            model.optimizer.apply(grads, model.trainable_variables)
            return loss, norm

        @tf.function
        def test_step(batch):
            losses = strategy.run(
                lambda x, y: replica_loss(x, y, training=False),
                args=(batch[0], batch[1]),
            )
            return strategy.reduce(sum_, losses, axis=None)

        self._train_step, self._test_step = train_step, test_step

    def _broadcast_from_first_replica(self) -> None:
        """Makes every worker start from the first worker's weights."""
        tf = self._tf
        strategy = self.strategy
        variables = self.model.weights

        def masked():
            context = tf.distribute.get_replica_context()
            first = tf.equal(context.replica_id_in_sync_group, 0)
            return [
                tf.where(first, tf.convert_to_tensor(v), tf.zeros_like(v))
                for v in variables
            ]

        values = strategy.run(tf.function(masked))
        for variable, value in zip(variables, values, strict=True):
            variable.assign(strategy.reduce(tf.distribute.ReduceOp.SUM, value, None))

    def fit(
        self,
        train_data,
        validation_data=None,
        *,
        epochs: int,
        callbacks=(),
        verbose: int | str = "auto",
        batch_size: int | None = None,
        steps_per_epoch: int | None = None,
    ) -> keras.callbacks.History:
        """Trains for `epochs`, calling Keras callbacks as `Model.fit` does.

        Returns:
            The `keras.callbacks.History` of this call.
        """
        tf = self._tf
        model = self.model
        train = self._distribute(train_data, batch_size, drop_remainder=True)
        val = self._distribute(validation_data, batch_size, drop_remainder=False)
        if steps_per_epoch is None:
            cardinality = int(train.cardinality())
            steps_per_epoch = cardinality if cardinality > 0 else None
        train_dist = self.strategy.experimental_distribute_dataset(train)
        val_dist = (
            None if val is None else self.strategy.experimental_distribute_dataset(val)
        )
        if self._train_step is None:
            self._build_steps()
        with self.strategy.scope():
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
        if verbose == "auto":
            verbose = 1
        history = keras.callbacks.History()
        callback_list = keras.callbacks.CallbackList(
            [*callbacks, history],
            add_progbar=bool(verbose),
            model=model,
            verbose=verbose,
            epochs=epochs,
            steps=steps_per_epoch,
        )

        model.stop_training = False
        self._broadcast_from_first_replica()
        callback_list.on_train_begin()
        # BackupAndRestore reports the epoch to resume from the way Keras' own
        # fit reads it.
        initial_epoch = getattr(model, "_initial_epoch", None) or 0
        model._initial_epoch = None
        logs = {}
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            total, steps = 0.0, 0
            iterator = iter(train_dist)
            while steps_per_epoch is None or steps < steps_per_epoch:
                try:
                    batch = next(iterator)
                except (StopIteration, tf.errors.OutOfRangeError):
                    break
                callback_list.on_train_batch_begin(steps)
                loss, norm = self._train_step(batch)
                total += float(loss)
                steps += 1
                logs = {"loss": total / steps, "grad_norm": float(norm)}
                callback_list.on_train_batch_end(steps - 1, logs)
                if model.stop_training:
                    break
            epoch_logs = {"loss": total / max(steps, 1)}
            if val_dist is not None:
                epoch_logs["val_loss"] = self._evaluate(val_dist)
            callback_list.on_epoch_end(epoch, epoch_logs)
            logs = epoch_logs
            if model.stop_training:
                break
        callback_list.on_train_end(logs)
        return history

    def _evaluate(self, dataset) -> float:
        # Each step's loss is already the mean of its global batch; weight the
        # steps by batch size so a short last batch counts for what it holds.
        # This worker's share of a batch is proportional to the global batch.
        values, sizes = [], []
        for batch in dataset:
            values.append(float(self._test_step(batch)))
            local = self.strategy.experimental_local_results(batch[1])
            sizes.append(sum(int(t.shape[0]) for t in local))
        if not values:
            return float("nan")
        return float(np.average(values, weights=sizes))
