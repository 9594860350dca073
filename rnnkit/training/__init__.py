"""Training utilities for the problems recurrent nets really have.

`fit` is the one entry point the applications use: Keras `fit` plus the
callbacks every long recurrent run needs (resume after a kill, the best
checkpoint, TensorBoard logs, a NaN/Inf guard that keeps the last good
weights, a history that survives resumes) and a training-curve PNG. It also
trains with truncated BPTT (`ChunkedSequences`) and under `tf.distribute`
strategies, multi-worker included (`DistributedTrainer`).

Example:
    >>> from rnnkit.training import fit, make_optimizer               # doctest: +SKIP
    >>> model.compile(make_optimizer("adam", 1e-3, global_clipnorm=1.0), "mse")  # doctest: +SKIP
    >>> history = fit(model, train_ds, val_ds, epochs=5, run_dir="runs/a")  # doctest: +SKIP
"""

from rnnkit.training.callbacks import (
    GradientNormLog,
    HistoryLog,
    NonFiniteGuard,
    plot_gradient_norms,
    read_history,
)
from rnnkit.training.distribute import (
    STRATEGY_NAMES,
    DistributedTrainer,
    get_strategy,
)
from rnnkit.training.loop import fit, make_optimizer, plot_history
from rnnkit.training.tbptt import (
    ChunkedSequences,
    predict_chunked,
    reset_states,
)

__all__ = [
    "STRATEGY_NAMES",
    "ChunkedSequences",
    "DistributedTrainer",
    "GradientNormLog",
    "HistoryLog",
    "NonFiniteGuard",
    "fit",
    "get_strategy",
    "make_optimizer",
    "plot_gradient_norms",
    "plot_history",
    "predict_chunked",
    "read_history",
    "reset_states",
]
