"""Every model shape: builds, fits a step, round-trips through .keras, masks padding."""

import numpy as np
import pytest

from rnnkit import models

VOCAB, TARGET_VOCAB = 20, 15
RNG = np.random.default_rng(7)
TOKENS = RNG.integers(1, VOCAB, (4, 7)).astype("int32")
TARGET_IN = RNG.integers(1, TARGET_VOCAB, (4, 5)).astype("int32")


def _pad(array, extra):
    return np.concatenate([array, np.zeros((array.shape[0], extra), array.dtype)], 1)


# name -> (builder, inputs, padded inputs, labels, how many leading output steps
# must agree between padded and unpadded runs (None: the whole output)).
SHAPES = {
    "many_to_one": (
        lambda: models.sequence_classifier(3, vocab_size=VOCAB, units=8, cell="gru"),
        TOKENS,
        _pad(TOKENS, 3),
        np.array([0, 1, 2, 0]),
        None,
    ),
    "many_to_one_bidirectional_features": (
        lambda: models.sequence_classifier(
            1, input_dim=3, units=8, bidirectional=True, regression=True
        ),
        RNG.normal(size=(4, 6, 3)).astype("float32"),
        None,
        RNG.normal(size=(4, 1)).astype("float32"),
        None,
    ),
    "many_to_many_tagger": (
        lambda: models.sequence_tagger(
            4,
            vocab_size=VOCAB,
            units=8,
            num_layers=2,
            bidirectional=True,
            residual=True,
            layer_norm=True,
            activation="relu",
        ),
        TOKENS,
        _pad(TOKENS, 3),
        RNG.integers(0, 4, (4, 7)),
        7,
    ),
    "one_to_many_generator": (
        lambda: models.sequence_generator(VOCAB, units=8, num_layers=2, cell="lstm"),
        TOKENS,
        _pad(TOKENS, 3),
        np.roll(TOKENS, -1, axis=1),
        7,
    ),
    "encoder_decoder_bahdanau": (
        lambda: models.encoder_decoder(
            VOCAB, TARGET_VOCAB, units=8, attention="bahdanau", cell="gru"
        ),
        [TOKENS, TARGET_IN],
        [_pad(TOKENS, 3), _pad(TARGET_IN, 2)],
        np.roll(TARGET_IN, -1, axis=1),
        5,
    ),
    "encoder_decoder_luong": (
        lambda: models.encoder_decoder(
            VOCAB, TARGET_VOCAB, units=8, num_layers=2, attention="luong"
        ),
        [TOKENS, TARGET_IN],
        [_pad(TOKENS, 3), _pad(TARGET_IN, 2)],
        np.roll(TARGET_IN, -1, axis=1),
        5,
    ),
}


@pytest.fixture(scope="module", params=sorted(SHAPES))
def trained(request):
    """A model of each shape after one training step, with its test inputs."""
    import keras

    keras.utils.set_random_seed(3)
    build, inputs, padded, labels, steps = SHAPES[request.param]
    model = build()
    # Eager execution: tracing a tf.function costs far more than one tiny step.
    model.run_eagerly = True
    history = model.fit(inputs, labels, epochs=1, batch_size=4, verbose=0)
    return request.param, model, inputs, padded, steps, history


def _predict(model, inputs):
    return np.asarray(model(inputs, training=False))


def test_fit_one_step_gives_finite_loss(trained):
    _, _, _, _, _, history = trained
    assert np.isfinite(history.history["loss"][0])


def test_save_load_round_trip_gives_identical_predictions(trained, tmp_path):
    name, model, inputs, _, _, _ = trained
    path = models.save_model(model, tmp_path / f"{name}.keras")
    loaded = models.load_model(path)
    np.testing.assert_array_equal(_predict(loaded, inputs), _predict(model, inputs))
    assert [w.shape for w in loaded.weights] == [w.shape for w in model.weights]


def test_padding_does_not_change_outputs(trained):
    _, model, inputs, padded, steps, _ = trained
    if padded is None:
        features = inputs
        padded = np.concatenate([features, np.zeros((4, 3, 3), "float32")], 1)
    plain, with_padding = _predict(model, inputs), _predict(model, padded)
    if steps is not None:
        with_padding = with_padding[:, :steps]
    np.testing.assert_allclose(with_padding, plain, atol=1e-5)


def test_generator_step_model_matches_the_full_model():
    model = models.sequence_generator(VOCAB, units=8, num_layers=2, cell="gru")
    step = models.generator_step_model(model)
    states = [np.zeros((4, 8), "float32") for _ in step.inputs[1:]]
    stepped = []
    for t in range(TOKENS.shape[1]):
        logits, *states = models.run_step(step, [TOKENS[:, t : t + 1], *states])
        stepped.append(logits)
    np.testing.assert_allclose(np.stack(stepped, 1), _predict(model, TOKENS), atol=1e-5)

    generated = models.generate(model, TOKENS[:, :3], 4, temperature=0.7, seed=1)
    assert generated.shape == (4, 7)
    np.testing.assert_array_equal(generated[:, :3], TOKENS[:, :3])
    again = models.generate(model, TOKENS[:, :3], 4, temperature=0.7, seed=1)
    np.testing.assert_array_equal(generated, again)


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_inference_models_match_teacher_forcing(attention):
    model = models.encoder_decoder(
        VOCAB, TARGET_VOCAB, units=8, num_layers=2, attention=attention
    )
    encoder, decoder = models.inference_models(model)
    source = _pad(TOKENS, 3)
    memory, *states = models.run_step(encoder, [source])
    memory_mask = (source != 0).astype("float32")
    stepped, weights = [], []
    for t in range(TARGET_IN.shape[1]):
        logits, attention_weights, *states = models.run_step(
            decoder, [TARGET_IN[:, t : t + 1], memory, memory_mask, *states]
        )
        stepped.append(logits)
        weights.append(attention_weights)
    full = _predict(model, [TOKENS, TARGET_IN])
    np.testing.assert_allclose(np.stack(stepped, 1), full, atol=1e-5)
    weights = np.stack(weights, 1)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.abs(weights[:, :, 7:]).max() < 1e-6  # padded source steps get no weight

    tokens, attention_map = models.greedy_decode(
        encoder, decoder, source, start_id=1, end_id=2, max_length=6
    )
    assert tokens.shape[0] == 4 and tokens.shape[1] <= 6
    assert attention_map.shape == (4, tokens.shape[1], source.shape[1])


@pytest.mark.parametrize(
    "tokens, message",
    [
        (np.zeros((2, 3, 1), "int32"), "2-D array"),
        (np.zeros((2, 3), "float32") + 0.5, "integer token ids"),
        (np.zeros((0, 3), "int32"), "at least one sequence"),
        (np.zeros((2, 0), "int32"), "at least one sequence"),
        (np.full((1, 2), VOCAB + 5, "int32"), "ids must be in"),
    ],
)
def test_generate_rejects_bad_primers(tokens, message):
    from rnnkit.errors import UsageError

    model = models.sequence_generator(VOCAB, units=4)
    with pytest.raises(UsageError, match=message):
        models.generate(model, tokens, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_classes=2), "exactly one of"),
        (dict(num_classes=2, vocab_size=10, input_dim=3), "exactly one of"),
        (dict(num_classes=0, vocab_size=10), "num_classes"),
        (dict(num_classes=2, vocab_size=10, cell="transformer"), "Unknown recurrent"),
        (dict(num_classes=2, vocab_size=10, activation="no_such"), "activation"),
    ],
)
def test_builders_reject_bad_arguments(kwargs, message):
    from rnnkit.errors import UsageError

    with pytest.raises(UsageError, match=message):
        models.sequence_classifier(**kwargs)


@pytest.mark.parametrize(
    "inputs, message",
    [
        (np.zeros((2, 5), "float32"), "rank 3|incompatible shape"),
        (np.zeros((0, 5, 3), "float32"), "non-empty"),
        (np.zeros((2, 0, 3), "float32"), "non-empty|at least one time step"),
    ],
)
def test_models_reject_bad_input_batches(inputs, message):
    from rnnkit.errors import UsageError

    model = models.sequence_classifier(2, input_dim=3, units=4)
    with pytest.raises((UsageError, ValueError), match=message):
        model(inputs)
