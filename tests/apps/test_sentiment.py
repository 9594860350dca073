"""The sentiment app end to end: data, training, int8 export, edge parity, CLI.

One small model (the quick preset on 1,500 examples) is trained and exported
once per module and shared by the tests.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from rnnkit.apps.sentiment import data as sentiment_data
from rnnkit.apps.sentiment.evaluate import classification_metrics, map_labels

from rnnkit.cli import main
from rnnkit.edge.text import WordTokenizer
from rnnkit.errors import UsageError

# ---------------------------------------------------------------------------- data


def test_sst2_loaders_read_the_published_files(data_dir):
    glue_dev = sentiment_data.load_glue("dev", data_dir)
    sentences = sentiment_data.load_sentence_level("train", data_dir)
    dev = sentiment_data.load_sst2("dev", data_dir)
    assert (len(glue_dev), len(sentences), len(dev)) == (872, 6920, 872)
    assert set(dev.labels) == {"negative", "positive"}
    assert dev.labels.count("positive") == 444
    with pytest.raises(UsageError, match="Unknown GLUE SST-2 split"):
        sentiment_data.load_glue("test", data_dir)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("reviews.csv", 'text,label\n"Great, truly",pos\nAwful film,neg\n'),
        ("reviews.tsv", "Great, truly\tpos\nAwful film\tneg\n"),
        ("reviews.tsv", "stars\treview\npos\tGreat, truly\nneg\tAwful film\n"),
        (
            "reviews.jsonl",
            '{"review": "Great, truly", "sentiment": "pos"}\n\n'
            '{"review": "Awful film", "sentiment": "neg"}\n',
        ),
        ("reviews.txt", "pos Great, truly\nneg Awful film\n"),
    ],
)
def test_user_files_in_every_format(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    if name.endswith(".txt"):
        # The SST line format takes 0/1 labels only; other names are refused.
        with pytest.raises(UsageError, match="must be 0 or 1"):
            sentiment_data.load_file(path)
        return
    if "stars" in content:
        examples = sentiment_data.load_file(path, label_column="stars")
    else:
        examples = sentiment_data.load_file(path)
    assert examples.texts == ["Great, truly", "Awful film"]
    assert examples.labels == ["pos", "neg"]
    np.testing.assert_array_equal(
        map_labels(examples.labels, ["negative", "positive"]), [1, 0]
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"text\tlabel\nfine\t1\n\xff\xfe broken\t0\n", "not valid utf-8.*line 3"),
        (b"text\tlabel\n   \t1\n", "line 2: the text is empty"),
        (b"text\tlabel\tx\nfine\n", "expected at least 2 columns"),
        (b"a\tb\tc\n1\t2\t3\n", "cannot tell the text and label columns apart"),
    ],
)
def test_bad_user_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        sentiment_data.load_file(path)


def test_unseen_label_names_are_listed():
    with pytest.raises(UsageError, match=r"'meh' \(2x\)"):
        map_labels(["positive", "meh", "meh", "1"], ["negative", "positive"])
    np.testing.assert_array_equal(
        map_labels(["Positive", "0", "neg"], ["negative", "positive"]), [1, 0, 0]
    )


def test_metrics_on_a_known_confusion():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    metrics = classification_metrics(
        np.array([0, 1, 1, 1]), probabilities, ["negative", "positive"]
    )
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["confusion_matrix"] == [[1, 0], [1, 2]]
    # F1: negative 2*1*0.5/1.5 = 2/3, positive 2*1*(2/3)/(5/3) = 0.8.
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


# ---------------------------------------------------- one trained and exported model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    from rnnkit.apps.sentiment.train import get_preset, train

    preset = get_preset("quick").replace(max_examples=1500, epochs=2, batch_size=32)
    out = tmp_path_factory.mktemp("sentiment_run")
    train(preset, out, data_dir=data_dir, verbose=0)
    return out


@pytest.fixture(scope="module")
def int8_path(run_dir):
    from rnnkit.apps.sentiment.export import export_run

    return export_run(run_dir, "int8").path


@pytest.fixture(scope="module")
def dev_sentences(data_dir):
    dev = sentiment_data.load_sst2("dev", data_dir).subset(120, seed=3)
    return dev


@pytest.mark.slow
def test_training_writes_the_run_folder(run_dir):
    for name in (
        "model.keras",
        "vocabulary.json",
        "sentiment.json",
        "metrics.json",
        "training_curves.png",
        "confusion_matrix.png",
        "representative.npy",
    ):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["examples"] == 872
    assert 0.0 <= metrics["macro_f1"] <= 1.0
    assert len(metrics["curves"]["val_loss"]) == 2
    representative = np.load(run_dir / "representative.npy")
    assert representative.dtype == np.int32 and representative.shape[1] == 64
    tokenizer = WordTokenizer.load(run_dir / "vocabulary.json")
    info = json.loads((run_dir / "sentiment.json").read_text())
    assert info["vocabulary_fingerprint"] == tokenizer.fingerprint
    assert representative.max() < len(tokenizer)


@pytest.mark.slow
def test_keras_padding_is_masked(run_dir, dev_sentences):
    """A padded batch gives each sentence's exact-length result."""
    from rnnkit.apps.sentiment.predict import KerasClassifier

    classifier = KerasClassifier(run_dir / "model.keras")
    texts = dev_sentences.texts[:12]
    batched = classifier.predict_proba(texts)
    alone = np.concatenate([classifier.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(batched, alone, atol=1e-5)


@pytest.mark.slow
def test_edge_int8_agrees_with_keras(run_dir, int8_path, dev_sentences):
    from rnnkit.apps.sentiment.predict import EdgeClassifier, KerasClassifier

    keras_probabilities = KerasClassifier(run_dir / "model.keras").predict_proba(
        dev_sentences.texts
    )
    edge = EdgeClassifier(int8_path)
    assert edge.labels == ["negative", "positive"]
    assert (
        edge.tokenizer.fingerprint
        == WordTokenizer.load(run_dir / "vocabulary.json").fingerprint
    )
    edge_probabilities = edge.predict_proba(dev_sentences.texts)
    assert np.abs(edge_probabilities - keras_probabilities).max() < 0.08
    # Where Keras is not on the fence, int8 picks the same label.
    sure = np.abs(keras_probabilities[:, 1] - 0.5) > 0.1
    assert sure.sum() > 0
    np.testing.assert_array_equal(
        edge_probabilities[sure].argmax(1), keras_probabilities[sure].argmax(1)
    )


TRICKY_TEXTS = [
    "It's NOT bad... (really)!",
    "i do n't know , ca n't say -lrb- honestly -rrb-",
    "Café “crème” — 1/2 star; Mr. Smith's J. Lo cameo in the '70s",
    "\u00a0\t?!?",
    "unheard-of zxqv words " * 40,
]


@pytest.mark.slow
def test_training_and_device_token_ids_match(run_dir, int8_path):
    """The vocabulary saved at train time and the one inside the .tflite agree."""
    from rnnkit.apps.sentiment.predict import EdgeClassifier

    trained = WordTokenizer.load(run_dir / "vocabulary.json")
    device = EdgeClassifier(int8_path).tokenizer
    for text in TRICKY_TEXTS:
        ids = trained.encode(text)
        assert ids == device.encode(text)
        assert 0 < len(ids) <= 64
    # The last text is cut to its first 64 tokens, on both sides.
    assert len(device.encode(TRICKY_TEXTS[-1])) == 64
    assert device.encode("the") != [1]  # a common word is in the vocabulary


@pytest.mark.slow
def test_exporter_command_with_the_run_files(
    run_dir, int8_path, dev_sentences, tmp_path
):
    """`rnnkit export` given representative.npy and export_metadata.json."""
    from rnnkit.apps.sentiment.predict import EdgeClassifier

    out = tmp_path / "cli_int8.tflite"
    argv = [
        "export",
        str(run_dir / "model.keras"),
        "-o",
        str(out),
        "--quantize",
        "int8",
    ]
    argv += ["--representative-data", str(run_dir / "representative.npy")]
    argv += ["--metadata", str(run_dir / "export_metadata.json")]
    assert main(argv) == 0
    from_cli = EdgeClassifier(out)
    from_app = EdgeClassifier(int8_path)
    assert from_cli.labels == from_app.labels
    assert from_cli.tokenizer.fingerprint == from_app.tokenizer.fingerprint
    texts = dev_sentences.texts[:20]
    np.testing.assert_allclose(
        from_cli.predict_proba(texts), from_app.predict_proba(texts), atol=1e-6
    )


def _json_tail(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.slow
def test_evaluate_keras_and_tflite_alike(
    run_dir, int8_path, dev_sentences, tmp_path, capsys
):
    path = tmp_path / "dev.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for text, label in zip(dev_sentences.texts, dev_sentences.labels, strict=True):
            handle.write(json.dumps({"text": text, "label": label}) + "\n")
    results = {}
    for model in (run_dir / "model.keras", int8_path):
        capsys.readouterr()
        out_dir = tmp_path / model.suffix[1:]
        assert (
            main(
                [
                    "evaluate",
                    "sentiment",
                    str(model),
                    "--file",
                    str(path),
                    "--json",
                    "--out",
                    str(out_dir),
                ]
            )
            == 0
        )
        results[model.suffix] = _json_tail(capsys.readouterr().out)
        assert (out_dir / "confusion_matrix.png").is_file()
    assert results[".keras"]["examples"] == results[".tflite"]["examples"] == 120
    assert abs(results[".keras"]["accuracy"] - results[".tflite"]["accuracy"]) <= 0.05


@pytest.mark.slow
def test_predict_on_tflite_uses_only_the_edge_runtime(int8_path):
    code = (
        "import sys; from rnnkit.cli import main; "
        f"status = main(['predict', 'sentiment', '--json', {str(int8_path)!r}, "
        "'A gorgeous, witty film.', '?!', 'dull ' * 500]); "
        "print('TF_LOADED', 'tensorflow' in sys.modules, status)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "TF_LOADED False 0", result.stdout + result.stderr
    predictions = [json.loads(line) for line in lines[:-1]]
    assert len(predictions) == 3
    for prediction in predictions:
        assert prediction["label"] in ("negative", "positive")
        assert 0.5 <= prediction["probability"] <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["keras", "tflite"])
def test_predict_bad_input_is_one_line_error(
    run_dir, int8_path, tmp_path, capsys, kind
):
    model = str(run_dir / "model.keras") if kind == "keras" else str(int8_path)
    other = tmp_path / "other_vocabulary.json"
    WordTokenizer.fit(["some other words"], max_size=50).save(other)
    cases = [
        (["predict", "sentiment", model, "   "], "no words to classify"),
        (
            ["predict", "sentiment", "--vocab", str(other), model, "good"],
            "does not belong",
        ),
        (
            ["predict", "sentiment", str(tmp_path / "missing.tflite"), "x"],
            "does not exist",
        ),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) in (1, 2)
        assert message in capsys.readouterr().err


@pytest.mark.slow
def test_predict_reads_stdin_and_refuses_bad_bytes(int8_path):
    command = [sys.executable, "-m", "rnnkit", "predict", "sentiment", str(int8_path)]
    good = subprocess.run(
        command,
        input=b"a fine film\n\n  \nan awful film\n",
        capture_output=True,
        timeout=300,
    )
    assert good.returncode == 0, good.stderr
    assert len(good.stdout.decode().strip().splitlines()) == 2
    bad = subprocess.run(
        command, input=b"ok\n\xff\xfe\n", capture_output=True, timeout=300
    )
    assert bad.returncode == 2
    assert b"not valid utf-8" in bad.stderr and b"Traceback" not in bad.stderr


def test_max_pooling_option_and_its_bad_value():
    from rnnkit.apps.sentiment.model import ModelConfig, build_model

    from rnnkit.errors import UsageError

    model = build_model(50, 2, ModelConfig(units=8, embedding_dim=8, pooling="max"))
    ids = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 10]], np.int32)
    probs = np.asarray(model(ids))
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("pooling") is not None
    with pytest.raises(UsageError, match="Expected 'last' or 'max'"):
        build_model(50, 2, ModelConfig(pooling="mean"))
