"""The translation app's device half and data handling, without TensorFlow.

Decoding is checked against a small numpy "model" whose next-token
distribution is a fixed table, so the best sequence is known by hand.
"""

import numpy as np
import pytest
from rnnkit.apps.translation import data as data_lib

from rnnkit.edge import translate as edge
from rnnkit.errors import UsageError


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("¡Hola, amigo!", ["¡", "Hola", ",", "amigo", "!"]),
        ("¿Dónde está Tom?", ["¿", "Dónde", "está", "Tom", "?"]),
        (
            "I don't know Tom's 3.5 dogs.",
            ["I", "don't", "know", "Tom's", "3.5", "dogs", "."],
        ),
        ("  Él\ttiene   mala pata. ", ["Él", "tiene", "mala", "pata", "."]),
    ],
)
def test_tokenize(text, tokens):
    assert edge.tokenize(text) == tokens


@pytest.mark.parametrize(
    "sentence",
    ["¿Qué hora es?", "He has bad luck.", "¡No me digas, Tom!", "It's 3.5 km (about)."],
)
def test_detokenize_inverts_tokenize(sentence):
    assert edge.detokenize(edge.tokenize(sentence)) == sentence


def test_control_characters_are_dropped_and_counted():
    cleaned, dropped = edge.normalize("Hola\x00 mun\u200bdo")
    assert cleaned == "Hola mundo"
    assert dropped == 2


def test_vocabulary_roundtrip_and_fingerprint(tmp_path):
    vocab = edge.Vocabulary.build([["a", "b", "a"], ["c", "a"]], size=6, language="x")
    assert vocab.tokens[:4] == edge.SPECIALS
    assert vocab.tokens[4] == "a"  # most frequent first
    path = vocab.save(tmp_path / "v.json")
    loaded = edge.Vocabulary.load(path)
    assert loaded == vocab
    assert loaded.fingerprint == vocab.fingerprint
    assert vocab.encode(["a", "zzz"]) == [4, edge.UNK_ID]


def test_damaged_vocabulary_is_rejected(tmp_path):
    vocab = edge.Vocabulary.build([["a", "b"]], size=6)
    payload = vocab.to_json()
    payload["tokens"] = payload["tokens"] + ["extra"]
    path = tmp_path / "v.json"
    path.write_text(__import__("json").dumps(payload))
    with pytest.raises(edge.TranslationInputError, match="fingerprint"):
        edge.Vocabulary.load(path)


def test_mismatched_vocabulary_is_rejected():
    a = edge.Vocabulary.build([["a"]], size=6)
    b = edge.Vocabulary.build([["b"]], size=6)
    metadata = {
        "source_vocab_fingerprint": a.fingerprint,
        "target_vocab_fingerprint": a.fingerprint,
    }
    with pytest.raises(edge.TranslationInputError, match="target vocabulary"):
        edge.check_fingerprints(metadata, a, b)


@pytest.mark.parametrize("text", ["", "   ", "\x00\x01"])
def test_empty_input_is_an_error(text):
    vocab = edge.Vocabulary.build([["a"]], size=6)
    with pytest.raises(edge.TranslationInputError, match="Nothing to translate"):
        edge.encode_source(text, vocab, max_len=8)


def test_long_input_is_truncated_and_said(caplog):
    vocab = edge.Vocabulary.build([["a"]], size=6)
    source = edge.encode_source("a " * 20, vocab, max_len=8)
    assert source.truncated == 13
    assert len(source.tokens) == 7
    assert source.ids[0, -1] == edge.EOS_ID
    assert "not translated" in caplog.text


def test_unknown_words_are_reported():
    vocab = edge.Vocabulary.build([["Hola"]], size=6)
    source = edge.encode_source("Hola ☃ Zyx", vocab, max_len=8)
    assert source.unknown == ("☃", "Zyx")


class TableModel:
    """A decoder whose next-token log-probabilities depend only on the last token.

    Vocabulary: 0 pad, 1 unk, 2 <s>, 3 </s>, 4 "x", 5 "y". From <s>, "x" is the
    likelier first token (0.6) but leads to a poor continuation; "y" (0.4) is
    followed by </s> with probability 0.9. Greedy picks x..., beam finds y </s>.
    """

    table = {
        2: [0, 0, 0, 0.0, 0.6, 0.4],
        4: [0, 0, 0, 0.3, 0.35, 0.35],
        5: [0, 0, 0, 0.9, 0.05, 0.05],
    }

    def encode(self, source_ids):
        length = source_ids.shape[1]
        return (
            np.zeros((1, length, 2), np.float32),
            np.ones((1, length), np.float32),
            np.zeros((1, 3), np.float32),
        )

    def step(self, tokens, memory, mask, state):
        probs = np.array(
            [self.table.get(int(t), self.table[4]) for t in tokens[:, 0]], np.float64
        )
        logits = np.log(np.maximum(probs, 1e-9))
        attention = np.full((len(tokens), memory.shape[1]), 1.0 / memory.shape[1])
        return logits, state, attention


def test_beam_search_beats_greedy_on_a_known_table():
    model = TableModel()
    source = np.zeros((1, 4), np.int32)
    greedy = edge.greedy_decode(model.encode, model.step, source, max_len=6)
    beams = edge.beam_search(
        model.encode, model.step, source, 6, beam_width=3, alpha=0.0
    )
    assert greedy.ids[0] == 4
    assert beams[0].ids == (5,)
    assert beams[0].score == pytest.approx(np.log(0.4 * 0.9))
    assert beams[0].score > greedy.score
    assert beams[0].attention.shape == (1, 4)


def test_beam_width_one_equals_greedy():
    model = TableModel()
    source = np.zeros((1, 4), np.int32)
    greedy = edge.greedy_decode(model.encode, model.step, source, max_len=6)
    beam = edge.beam_search(model.encode, model.step, source, 6, beam_width=1)[0]
    assert beam.ids == greedy.ids


@pytest.mark.parametrize("alpha, longer", [(0.0, False), (6.0, True)])
def test_length_penalty_changes_the_ranking(alpha, longer):
    model = TableModel()
    source = np.zeros((1, 4), np.int32)
    best = edge.beam_search(model.encode, model.step, source, 6, 3, alpha)[0]
    assert (len(best.ids) > 1) == longer


def test_unknown_output_copies_the_attended_source_word():
    vocab = edge.Vocabulary.build([["he", "has"]], size=8)
    attention = np.array([[1.0, 0, 0], [0, 0.1, 0.9]])
    tokens = edge.replace_unknown(
        [vocab.encode(["he"])[0], edge.UNK_ID], attention, vocab, ["Él", "Tom"]
    )
    assert tokens == ["he", "Tom"]


def test_split_is_reproducible_and_by_english_sentence():
    pairs = [(f"E{i % 50}", f"S{i}") for i in range(500)]
    first = data_lib.split_pairs(pairs, 0.1, 0.1, seed=3)
    second = data_lib.split_pairs(list(reversed(pairs)), 0.1, 0.1, seed=3)
    for name in ("train", "valid", "test"):
        assert sorted(first[name]) == sorted(second[name])
    english = {name: {e for e, _ in rows} for name, rows in first.items()}
    assert not english["train"] & english["test"]
    assert not english["train"] & english["valid"]
    assert sum(len(rows) for rows in first.values()) == 500


def test_real_split_keeps_test_sentences_unseen(data_dir):
    split = data_lib.load_split("spa-eng", data_dir)
    train_targets = {p.target for p in split["train"]}
    assert len(split["test"]) > 1000
    assert not any(p.target in train_targets for p in split["test"])


def test_parallel_files_of_different_lengths_are_an_error(tmp_path):
    (tmp_path / "src.txt").write_text("Hola.\nAdiós.\n")
    (tmp_path / "ref.txt").write_text("Hello.\n")
    with pytest.raises(UsageError, match="same number of lines"):
        data_lib.read_parallel(tmp_path / "src.txt", tmp_path / "ref.txt")


def test_unknown_direction_is_an_error():
    with pytest.raises(UsageError, match="direction"):
        data_lib.check_direction("fra-eng")


def test_shipped_folder_without_keras_model_uses_its_int8_pair(tmp_path):
    from rnnkit.apps.translation.cli import SHIPPED_DIR
    from rnnkit.apps.translation.runtime import load_translator

    from rnnkit.errors import ModelFileError

    translator = load_translator(SHIPPED_DIR)
    assert translator.backend == "tflite"
    assert translator.translate("Tengo hambre.").tokens
    with pytest.raises(ModelFileError, match="neither model.keras"):
        load_translator(tmp_path)
