"""Synthetic long-range dependency tasks, as seeded numpy generators.

* `adding_problem` (Hochreiter & Schmidhuber 1997): a sequence of random numbers
  with two of them marked; the target is the sum of the marked two. One marker
  falls in the first half, one in the second, so the network must remember a
  number for about half the sequence. Predicting the mean (1.0) gives a mean
  squared error of about 0.167; "solved" means far below that.
* `copy_task`: a few symbols at the start, blanks, then a "go" marker; at the
  last steps the network must output the symbols it saw first. Chance accuracy
  is 1 / num_symbols.
* `allergy_stories` and `spanish_fill_blank`: tiny text corpora for the
  tutorial notebook (a fact placed N sentences back; a blank that only the
  next word explains).

Every generator takes a `seed` and returns the same arrays for the same seed.

Example:
    >>> from rnnkit.tasks import adding_problem
    >>> x, y = adding_problem(num_samples=4, length=20, seed=0)
    >>> x.shape, y.shape
    ((4, 20, 2), (4, 1))
"""

from __future__ import annotations

import numpy as np

from rnnkit.errors import UsageError

TASKS = ("adding", "copy")


def _check_count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise UsageError(f"`{name}` must be an integer. Received: {value!r}")
    if value < minimum:
        raise UsageError(f"`{name}` must be >= {minimum}. Received: {name}={value}")
    return int(value)


def adding_problem(
    num_samples: int, length: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem.

    Args:
        num_samples: sequences to make.
        length: time steps per sequence (at least 2).
        seed: random seed.

    Returns:
        `(x, y)`: x float32 (num_samples, length, 2) with channel 0 the values
        in [0, 1) and channel 1 the 0/1 markers; y float32 (num_samples, 1),
        the sum of the two marked values.
    """
    num_samples = _check_count("num_samples", num_samples)
    length = _check_count("length", length, minimum=2)
    rng = np.random.default_rng(seed)
    values = rng.random((num_samples, length), dtype=np.float32)
    half = length // 2
    first = rng.integers(0, half, num_samples)
    second = rng.integers(half, length, num_samples)
    markers = np.zeros((num_samples, length), np.float32)
    rows = np.arange(num_samples)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1)
    y = (values[rows, first] + values[rows, second])[:, None].astype(np.float32)
    return x, y


def adding_accuracy(y_true, y_pred, tolerance: float = 0.04) -> float:
    """Fraction of adding-problem predictions within `tolerance` of the sum."""
    y_true = np.asarray(y_true, np.float32).reshape(-1)
    y_pred = np.asarray(y_pred, np.float32).reshape(-1)
    return float(np.mean(np.abs(y_true - y_pred) < tolerance))


def copy_task(
    num_samples: int,
    length: int,
    num_symbols: int = 4,
    copy_length: int = 3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The copy (delayed recall) task, as a per-step tagging problem.

    Input one-hot channels: `num_symbols` symbols, then "blank", then "go".
    Steps 0..copy_length-1 hold random symbols; the step before the last
    `copy_length` steps holds "go"; all others are blank. The target is blank
    everywhere except the last `copy_length` steps, which must repeat the
    symbols in order; `sample_weight` is 1 only there, so the loss and the
    accuracy measure recall alone.

    Args:
        num_samples: sequences to make.
        length: total time steps; the recall distance is about this long.
            Must be at least `2 * copy_length + 1`.
        num_symbols: alphabet size (chance accuracy is 1 / num_symbols).
        copy_length: how many symbols to remember.
        seed: random seed.

    Returns:
        `(x, y, sample_weight)`: x float32 (n, length, num_symbols + 2), y int32
        (n, length) labels in [0, num_symbols] (num_symbols = blank), and
        sample_weight float32 (n, length).
    """
    num_samples = _check_count("num_samples", num_samples)
    num_symbols = _check_count("num_symbols", num_symbols, minimum=2)
    copy_length = _check_count("copy_length", copy_length)
    length = _check_count("length", length, minimum=2 * copy_length + 1)
    rng = np.random.default_rng(seed)
    blank, go = num_symbols, num_symbols + 1
    symbols = rng.integers(0, num_symbols, (num_samples, copy_length))

    inputs = np.full((num_samples, length), blank, np.int64)
    inputs[:, :copy_length] = symbols
    inputs[:, length - copy_length - 1] = go
    x = np.eye(num_symbols + 2, dtype=np.float32)[inputs]

    y = np.full((num_samples, length), blank, np.int32)
    y[:, length - copy_length :] = symbols
    sample_weight = np.zeros((num_samples, length), np.float32)
    sample_weight[:, length - copy_length :] = 1.0
    return x, y, sample_weight


def copy_accuracy(y_true, probabilities, sample_weight) -> float:
    """Per-symbol accuracy of a copy-task tagger on the recall steps only."""
    predicted = np.asarray(probabilities).argmax(-1)
    weight = np.asarray(sample_weight) > 0
    return float(np.mean(predicted[weight] == np.asarray(y_true)[weight]))


# --- Tiny text corpora for the tutorial notebook ---------------------------------

_NAMES = ("alice", "maria", "emma", "sofia")
# Short on purpose: the tutorial's models must train in seconds on 20 of them.
_FILLERS = (
    "the bus was late",
    "it rained",
    "a dog barked",
    "the shop was closed",
    "bob called",
    "the sun came out",
    "she read a book",
    "the tea was hot",
    "the train left early",
    "music played",
    "the cat slept",
    "he went home",
)


def allergy_stories(
    num_samples: int, distance: int, seed: int = 0
) -> tuple[list[str], np.ndarray]:
    """Short stories whose last sentence depends on a fact `distance` sentences back.

    A story states a fact ("alice is allergic to nuts" or "alice is fond of nuts"),
    then `distance - 1` unrelated filler sentences, then asks about it ("she
    ___ eat peanut butter"). Label 1 means "cannot" (allergic), 0 "can".

    Returns:
        `(stories, labels)`: lowercase stories with " . " between sentences and
        a final "she ? eat peanut butter"; labels int32 (num_samples,).
    """
    num_samples = _check_count("num_samples", num_samples)
    distance = _check_count("distance", distance)
    rng = np.random.default_rng(seed)
    stories, labels = [], np.zeros(num_samples, np.int32)
    for index in range(num_samples):
        name = _NAMES[rng.integers(len(_NAMES))]
        allergic = bool(rng.integers(2))
        # Both facts have five words, so story length says nothing about the label.
        fact = f"{name} is allergic to nuts" if allergic else f"{name} is fond of nuts"
        fillers = [_FILLERS[i] for i in rng.integers(0, len(_FILLERS), distance - 1)]
        stories.append(" . ".join([fact, *fillers, "she ? eat peanut butter"]))
        labels[index] = int(allergic)
    return stories, labels


# The blank after "tener" is decided only by the noun after it.
SPANISH_BLANKS = {
    "pata": "mala",  # tener mala pata: to be unlucky
    "suerte": "buena",  # tener buena suerte
    "hambre": "mucha",  # tener mucha hambre
    "frio": "mucho",  # tener mucho frio
    "razon": "toda",  # tener toda la razon, shortened
    "prisa": "poca",  # tener poca prisa
}
_SPANISH_PREFIXES = ("yo suelo", "hoy vas a", "no quiero", "ella puede", "siempre va a")
_SPANISH_SUFFIXES = ("hoy", "en casa", "otra vez", "esta semana", "")


def spanish_fill_blank(num_samples: int, seed: int = 0) -> list[tuple[str, str]]:
    """Phrases like "yo suelo tener ___ pata hoy" and the word for the blank.

    Returns:
        A list of `(phrase_with_blank, answer)`; the blank is written "_".
    """
    num_samples = _check_count("num_samples", num_samples)
    rng = np.random.default_rng(seed)
    nouns = sorted(SPANISH_BLANKS)
    samples = []
    for _ in range(num_samples):
        noun = nouns[rng.integers(len(nouns))]
        prefix = _SPANISH_PREFIXES[rng.integers(len(_SPANISH_PREFIXES))]
        suffix = _SPANISH_SUFFIXES[rng.integers(len(_SPANISH_SUFFIXES))]
        phrase = " ".join(part for part in (prefix, "tener _", noun, suffix) if part)
        samples.append((phrase, SPANISH_BLANKS[noun]))
    return samples


def tokenize(texts, vocabulary: dict[str, int] | None = None):
    """Whitespace tokenizer: ids from 1 (0 is padding), right-padded batch.

    Args:
        texts: strings.
        vocabulary: word -> id; built from `texts` when None.

    Returns:
        `(ids, vocabulary)`: ids int32 (len(texts), longest); unknown words of a
        given vocabulary map to its "<unk>" id, which it must then contain.
    """
    words = [text.split() for text in texts]
    if vocabulary is None:
        vocabulary = {"<unk>": 1}
        for sentence in words:
            for word in sentence:
                vocabulary.setdefault(word, len(vocabulary) + 1)
    longest = max((len(sentence) for sentence in words), default=0)
    if longest == 0:
        raise UsageError("`texts` must hold at least one non-empty text.")
    ids = np.zeros((len(words), longest), np.int32)
    for row, sentence in enumerate(words):
        ids[row, : len(sentence)] = [
            vocabulary.get(word, vocabulary.get("<unk>", 1)) for word in sentence
        ]
    return ids, vocabulary


def _task_model(task: str, cell: str, units: int, learning_rate: float, **cell_kwargs):
    from rnnkit import models

    if task == "adding":
        return models.sequence_classifier(
            1,
            input_dim=2,
            regression=True,
            cell=cell,
            units=units,
            learning_rate=learning_rate,
            name=f"adding_{cell}",
            **cell_kwargs,
        )
    return models.sequence_tagger(
        COPY_SYMBOLS + 2,
        input_dim=COPY_SYMBOLS + 2,
        cell=cell,
        units=units,
        learning_rate=learning_rate,
        name=f"copy_{cell}",
        **cell_kwargs,
    )


COPY_SYMBOLS = 4


def make_task_data(task: str, num_samples: int, length: int, seed: int) -> dict:
    """The arrays of one task split: `x`, `y` and (copy only) `sample_weight`."""
    if task == "adding":
        x, y = adding_problem(num_samples, length, seed=seed)
        return {"x": x, "y": y}
    if task == "copy":
        x, y, weight = copy_task(num_samples, length, COPY_SYMBOLS, seed=seed)
        return {"x": x, "y": y, "sample_weight": weight}
    raise UsageError(f"Unknown task {task!r}. Expected one of {list(TASKS)}.")


def task_accuracy(task: str, model, data: dict) -> float:
    """Adding: fraction within 0.04 of the sum; copy: recall accuracy."""
    predictions = model.predict(data["x"], verbose=0, batch_size=256)
    if task == "adding":
        return adding_accuracy(data["y"], predictions)
    return copy_accuracy(data["y"], predictions, data["sample_weight"])


def train_on_task(
    task: str,
    cell: str,
    length: int,
    *,
    num_samples: int = 2000,
    epochs: int = 10,
    units: int = 32,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    clipnorm: float | None = 1.0,
    seed: int = 0,
    verbose: int = 0,
    callbacks: list | tuple = (),
    **cell_kwargs,
):
    """Trains a fresh model on a long-range task and measures it on fresh data.

    Args:
        task: "adding" or "copy".
        cell: "simple_rnn", "lstm" or "gru".
        length: sequence length (the dependency spans about this many steps).
        num_samples: training sequences; a test set of a quarter as many
            (at least 200) comes from another seed.
        epochs, units, batch_size, learning_rate: training settings.
        clipnorm: Adam's gradient clipping by norm (None: off); long
            sequences occasionally produce exploding steps without it.
        seed: seeds the data and the weights.
        verbose: Keras progress display (0 silent, 1 progress bar).
        callbacks: extra Keras callbacks.
        **cell_kwargs: more `RecurrentStack` settings (activation...).

    Returns:
        `(model, result)`: the trained model and a dict with the task, cell,
        length, test accuracy, chance accuracy and final training loss.
    """
    import keras

    if task not in TASKS:
        raise UsageError(f"Unknown task {task!r}. Expected one of {list(TASKS)}.")
    num_samples = _check_count("num_samples", num_samples)
    epochs = _check_count("epochs", epochs)
    keras.utils.set_random_seed(seed)
    train = make_task_data(task, num_samples, length, seed)
    test = make_task_data(task, max(200, num_samples // 4), length, seed + 10_000)
    model = _task_model(task, cell, units, learning_rate, **cell_kwargs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=clipnorm),
        loss=model.loss,
    )
    history = model.fit(
        train["x"],
        train["y"],
        sample_weight=train.get("sample_weight"),
        epochs=epochs,
        batch_size=batch_size,
        verbose=verbose,
        callbacks=list(callbacks),
    )
    result = {
        "task": task,
        "cell": cell,
        "length": length,
        "accuracy": task_accuracy(task, model, test),
        "chance": _chance(task, test),
        "train_loss": float(history.history["loss"][-1]),
        "epochs": epochs,
        "num_samples": num_samples,
        "units": units,
        "seed": seed,
    }
    return model, result


def _chance(task: str, test: dict) -> float:
    """The accuracy of the best input-blind guess."""
    if task == "adding":
        return adding_accuracy(test["y"], np.full_like(test["y"], 1.0))
    return 1.0 / COPY_SYMBOLS
