"""Training utilities for the problems recurrent nets really have.

`fit` is the one entry point the applications use: Keras `fit` plus the
callbacks every long recurrent run needs (resume after a kill, the best
checkpoint, TensorBoard logs, a NaN guard) and a training-curve PNG.

Example:
    >>> from rnnkit.training import fit                               # doctest: +SKIP
    >>> history = fit(model, train_ds, val_ds, epochs=5, run_dir="runs/a")  # doctest: +SKIP
"""

from rnnkit.training.loop import fit, plot_history

__all__ = ["fit", "plot_history"]
