"""The device half of the music application: piano rolls, the metric and sampling.

Everything a phone or microcontroller host needs to generate polyphonic music
note by note from a streaming piano-roll model lives here, in pure Python and
numpy, so that training, evaluation and on-device generation share one copy:

* piano-roll helpers: 88 keys, column `j` is MIDI pitch `21 + j`
  (`pitches_to_roll`, `roll_to_pitches`, `input_frames`);
* the published metric: negative log-likelihood per time step, summed over the
  88 notes and averaged over every time step (`nll_per_step`), and the
  frame-level accuracy of Bay et al. (2009) (`frame_accuracy`);
* sampling: independent Bernoulli draws per key with a temperature, a cap on
  how many keys sound at once, and a seeded generator (`sample_frame`);
* the generation loop over any one-step callable that maps an input frame to
  88 logits (`generate`), e.g. a streaming `rnnkit.edge.EdgeModel`.

The model predicts frame `t` from frames `0 .. t-1`; its input at step 0 is an
all-zero "start" frame, so `input_frames(roll)` is the roll shifted right by
one step with zeros in front.

Example:
    >>> import numpy as np
    >>> from rnnkit.edge import music
    >>> roll = music.pitches_to_roll([(60, 64, 67), (), (62,)])
    >>> roll.shape, music.roll_to_pitches(roll)
    ((3, 88), [(60, 64, 67), (), (62,)])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from rnnkit.edge._errors import EdgeUsageError

NUM_KEYS = 88
LOWEST_PITCH = 21  # A0, the lowest key of a piano.
HIGHEST_PITCH = LOWEST_PITCH + NUM_KEYS - 1  # C8.


class MusicInputError(EdgeUsageError):
    """Bad input to the music helpers (a pitch off the keyboard, a wrong shape...).

    An edge-runtime error (this module imports nothing outside `rnnkit.edge`);
    the application converts it to `rnnkit.errors.UsageError`.
    """


def pitches_to_roll(steps: Iterable[Iterable[int]]) -> np.ndarray:
    """Turns a sequence of time steps, each a collection of MIDI pitches, into a roll.

    Args:
        steps: one item per time step; each item holds the MIDI pitch numbers
            (21..108) sounding during that step. An empty item is a rest.

    Returns:
        A uint8 array of shape (time, 88) with 1 where a key sounds.

    Raises:
        MusicInputError: a pitch is outside the 88 keys of a piano.
    """
    steps = list(steps)
    roll = np.zeros((len(steps), NUM_KEYS), dtype=np.uint8)
    for t, pitches in enumerate(steps):
        for pitch in pitches:
            pitch = int(pitch)
            if not LOWEST_PITCH <= pitch <= HIGHEST_PITCH:
                raise MusicInputError(
                    f"Pitch {pitch} at time step {t} is outside the 88-key range. "
                    f"Expected MIDI pitches {LOWEST_PITCH}..{HIGHEST_PITCH}. "
                    f"Received: pitch={pitch}"
                )
            roll[t, pitch - LOWEST_PITCH] = 1
    return roll


def roll_to_pitches(roll: np.ndarray) -> list[tuple[int, ...]]:
    """The inverse of `pitches_to_roll`: a tuple of sounding MIDI pitches per step."""
    roll = check_roll(roll)
    return [tuple(int(j) + LOWEST_PITCH for j in np.flatnonzero(row)) for row in roll]


def check_roll(roll, name: str = "roll") -> np.ndarray:
    """Returns `roll` as a (time, 88) array, or raises `MusicInputError`."""
    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != NUM_KEYS:
        raise MusicInputError(
            f"`{name}` must be a piano roll of shape (time, {NUM_KEYS}). "
            f"Received: {name}.shape={roll.shape}"
        )
    return roll


def input_frames(roll: np.ndarray) -> np.ndarray:
    """The model's inputs for `roll`: the start frame (zeros), then frames 0..T-2.

    Args:
        roll: (time, 88) piano roll.

    Returns:
        float32 array of shape (time, 88); row `t` is what the model sees when
        it predicts frame `t`.
    """
    roll = check_roll(roll)
    inputs = np.zeros(roll.shape, dtype=np.float32)
    inputs[1:] = roll[:-1]
    return inputs


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    logits = np.asarray(logits, dtype=np.float64)
    out = np.empty_like(logits)
    positive = logits >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-logits[positive]))
    exp = np.exp(logits[~positive])
    out[~positive] = exp / (1.0 + exp)
    return out


def log_likelihood_terms(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-key negative log-likelihood of binary `targets` under logits.

    Computed from logits rather than probabilities, so a confident key
    (probability 1e-6) costs its true amount instead of log(0).

    Returns:
        float64 array of the same shape: softplus(z) - y * z, the Bernoulli
        negative log-likelihood with p = sigmoid(z).
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if z.shape != y.shape:
        raise MusicInputError(
            "`logits` and `targets` must have the same shape. "
            f"Received: logits.shape={z.shape}, targets.shape={y.shape}"
        )
    return np.logaddexp(0.0, z) - y * z


def nll_per_step(
    logits: np.ndarray | Sequence[np.ndarray],
    targets: np.ndarray | Sequence[np.ndarray],
) -> float:
    """Negative log-likelihood per time step, the measure of the published tables.

    Sums the Bernoulli negative log-likelihood (natural log) over the 88 keys of
    each time step, then averages over every time step of every piece (pieces
    weigh by their length).

    Args:
        logits: one (time, 88) array of logits per piece, or a single array.
        targets: the true piano rolls, shaped like `logits`.

    Returns:
        The mean NLL per time step in nats.
    """
    logits_list, targets_list = _as_piece_lists(logits, targets)
    total = 0.0
    steps = 0
    for z, y in zip(logits_list, targets_list, strict=True):
        total += float(log_likelihood_terms(z, y).sum())
        steps += len(y)
    if steps == 0:
        raise MusicInputError("No time steps to score. Received: 0 steps in total.")
    return total / steps


def frame_accuracy(
    logits: np.ndarray | Sequence[np.ndarray],
    targets: np.ndarray | Sequence[np.ndarray],
    threshold: float = 0.5,
) -> float:
    """Frame-level accuracy of Bay et al. (2009): TP / (TP + FP + FN) over all steps.

    A key is predicted on when its probability is at least `threshold`.
    Correctly predicted silence does not count, so predicting nothing scores 0.
    """
    logits_list, targets_list = _as_piece_lists(logits, targets)
    tp = fp = fn = 0
    for z, y in zip(logits_list, targets_list, strict=True):
        predicted = sigmoid(z) >= threshold
        truth = np.asarray(y) > 0
        tp += int(np.sum(predicted & truth))
        fp += int(np.sum(predicted & ~truth))
        fn += int(np.sum(~predicted & truth))
    denominator = tp + fp + fn
    return tp / denominator if denominator else 0.0


def _as_piece_lists(logits, targets):
    if isinstance(logits, np.ndarray) and logits.ndim == 2:
        logits = [logits]
    if isinstance(targets, np.ndarray) and targets.ndim == 2:
        targets = [targets]
    logits, targets = list(logits), list(targets)
    if len(logits) != len(targets):
        raise MusicInputError(
            "`logits` and `targets` must hold the same number of pieces. "
            f"Received: {len(logits)} and {len(targets)}"
        )
    return logits, targets


def sample_frame(
    logits: np.ndarray,
    rng: np.random.Generator,
    temperature: float = 1.0,
    max_notes: int | None = None,
) -> np.ndarray:
    """Draws one frame: an independent Bernoulli draw per key.

    Args:
        logits: (88,) logits of the next frame.
        rng: the seeded generator (reproducible output for a fixed seed).
        temperature: divides the logits; below 1 sharpens (more likely notes),
            above 1 flattens; 0 takes every key whose probability is >= 0.5.
        max_notes: at most this many keys sound at once; when the draw has
            more, the most probable of the drawn keys are kept. None: no cap.

    Returns:
        uint8 array of shape (88,).
    """
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    if logits.shape != (NUM_KEYS,):
        raise MusicInputError(
            f"`logits` must hold {NUM_KEYS} values. Received: shape={logits.shape}"
        )
    if temperature < 0:
        raise MusicInputError(
            f"`temperature` must be >= 0. Received: temperature={temperature}"
        )
    if max_notes is not None and max_notes < 0:
        raise MusicInputError(
            f"`max_notes` must be >= 0 or None. Received: max_notes={max_notes}"
        )
    if temperature == 0:
        frame = logits >= 0
    else:
        probabilities = sigmoid(logits / temperature)
        # One uniform draw per key, always all 88, so the generator advances by
        # the same amount each step whatever the probabilities are.
        frame = rng.random(NUM_KEYS) < probabilities
    if max_notes is not None and frame.sum() > max_notes:
        drawn = np.flatnonzero(frame)
        keep = drawn[np.argsort(-logits[drawn], kind="stable")[:max_notes]]
        frame = np.zeros(NUM_KEYS, dtype=bool)
        frame[keep] = True
    return frame.astype(np.uint8)


def generate(
    step: Callable[[np.ndarray], np.ndarray],
    steps: int,
    primer: np.ndarray | None = None,
    temperature: float = 1.0,
    max_notes: int | None = 4,
    seed: int = 0,
    return_logits: bool = False,
):
    """Generates `steps` new frames with a one-step model, after an optional primer.

    The caller gives a fresh (reset) model: `step` is called first with the
    all-zero start frame, then with each primer frame (teacher forcing, the
    model's outputs are ignored except the last), then with each sampled frame.

    Args:
        step: maps one float32 input frame of shape (88,) to the 88 logits of
            the next frame, keeping the recurrent state between calls.
        steps: how many frames to generate after the primer (>= 0).
        primer: optional (time, 88) piano roll to continue.
        temperature, max_notes: see `sample_frame`.
        seed: seed of the `numpy.random.Generator` used for every draw.
        return_logits: also return the (steps, 88) logits each frame was drawn from.

    Returns:
        The generated (steps, 88) uint8 roll (without the primer), and with
        `return_logits` a tuple (roll, logits).
    """
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise MusicInputError(
            f"`steps` must be a non-negative integer. Received: steps={steps!r}"
        )
    rng = np.random.default_rng(seed)
    frames = [np.zeros(NUM_KEYS, dtype=np.float32)]
    if primer is not None:
        primer = check_roll(primer, "primer")
        frames += [row.astype(np.float32) for row in primer]
    logits = None
    for frame in frames:
        logits = np.asarray(step(frame), dtype=np.float64).reshape(-1)

    generated = np.zeros((steps, NUM_KEYS), dtype=np.uint8)
    all_logits = np.zeros((steps, NUM_KEYS), dtype=np.float32)
    for t in range(steps):
        all_logits[t] = logits
        generated[t] = sample_frame(logits, rng, temperature, max_notes)
        if t + 1 < steps:
            logits = np.asarray(
                step(generated[t].astype(np.float32)), dtype=np.float64
            ).reshape(-1)
    return (generated, all_logits) if return_logits else generated


def roll_to_notes(roll: np.ndarray) -> list[tuple[int, int, int]]:
    """Merges consecutive on-steps of a key into notes.

    A key held over several steps is one note (the piano-roll format cannot tell
    a held note from repeated ones; holding is what chorales mostly do).

    Returns:
        (pitch, start_step, end_step) triples sorted by start then pitch; the
        end is exclusive.
    """
    roll = check_roll(roll)
    notes = []
    padded = np.zeros((len(roll) + 2, NUM_KEYS), dtype=np.int8)
    padded[1:-1] = roll > 0
    changes = np.diff(padded, axis=0)
    for key in range(NUM_KEYS):
        starts = np.flatnonzero(changes[:, key] == 1)
        ends = np.flatnonzero(changes[:, key] == -1)
        for start, end in zip(starts, ends, strict=True):
            notes.append((key + LOWEST_PITCH, int(start), int(end)))
    notes.sort(key=lambda note: (note[1], note[0]))
    return notes


def stream_step(stream) -> Callable[[np.ndarray], np.ndarray]:
    """Adapts a streaming model session (`EdgeModel.stream()`) to `generate`'s `step`.

    Args:
        stream: an object whose `step(x_t)` takes a (1, 88) float32 frame and
            returns the (1, 88) logits of the next frame, keeping its state.

    Returns:
        A callable mapping a (88,) frame to (88,) float32 logits.
    """

    def step(frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame, dtype=np.float32).reshape(1, NUM_KEYS)
        return np.asarray(stream.step(frame), dtype=np.float32).reshape(NUM_KEYS)

    return step
