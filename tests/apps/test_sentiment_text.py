"""The word tokenizer and vocabulary of rnnkit.edge.text (no TensorFlow needed)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rnnkit.edge.text import (
    OOV_ID,
    PAD_ID,
    VocabularyError,
    WordTokenizer,
    decode_text_bytes,
    tokenize,
)

# Raw text as a user types it, and the same sentence as the SST files write it:
# both must give the same tokens (the parity the model relies on).
RAW_AND_SST = [
    ("It's not bad... (really)!", "it 's not bad ... -lrb- really -rrb- !"),
    ("I don't know, can't say; won't.", "i do n't know , ca n't say ; wo n't ."),
    (
        "We're sure they've done it, you'll see",
        "we 're sure they 've done it , you 'll see",
    ),
    ("“Great” – said Mr. Smith", "`` great '' -- said mr. smith"),
    ("A café’s crème brûlée", "a cafe 's creme brulee"),
    ("writer/director of the '70s", r"writer\/director of the '70s"),
    ("1/2 a star, 3.5 at most", "1/2 a star , 3.5 at most"),
    (
        "E.T. is a first-rate, well-made film.",
        "e.t. is a first-rate , well-made film .",
    ),
    ("NON-STOP\u00a0ACTION!!!", "non-stop action ! ! !"),
]


@pytest.mark.parametrize(("raw", "sst"), RAW_AND_SST)
def test_raw_text_and_sst_text_tokenize_alike(raw, sst):
    assert tokenize(raw) == tokenize(sst)
    assert tokenize(raw)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("don't", ["do", "n't"]),
        ("o'brien's", ["o'brien", "'s"]),
        ("J. Lo sings", ["j.", "lo", "sings"]),
        ("grade a.", ["grade", "a", "."]),
        ("", []),
        ("   \t ", []),
        ("?!", ["?", "!"]),
    ],
)
def test_tokenize_rules(text, tokens):
    assert tokenize(text) == tokens


def test_sst_training_text_is_mostly_unchanged(data_dir):
    """The tokenizer leaves the already tokenized SST text almost as it is."""
    path = data_dir / "sentiment/sst2_glue/dev.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    same = sum(
        tokenize(line.split("\t")[0]) == line.split("\t")[0].split() for line in lines
    )
    assert same / len(lines) > 0.9


@pytest.fixture(scope="module")
def tokenizer():
    texts = ["a good film", "a bad film", "a good , good cast", "not good"]
    return WordTokenizer.fit(texts, max_size=6, min_count=1, max_length=4)


def test_fit_orders_by_count_and_limits_size(tokenizer):
    assert tokenizer.tokens[:2] == ["<pad>", "<unk>"]
    assert tokenizer.tokens[2:] == ["good", "a", "film", ","]
    assert len(tokenizer) == 6


def test_min_count_drops_rare_words():
    tok = WordTokenizer.fit(["x y y", "y z z"], max_size=100, min_count=2)
    assert tok.tokens[2:] == ["y", "z"]


def test_encode_oov_truncation_and_padding(tokenizer):
    assert tokenizer.encode("Good, GOOD film!") == [2, 5, 2, 4]
    assert tokenizer.encode("unheard-of words") == [OOV_ID, OOV_ID]
    assert tokenizer.encode("") == []
    assert len(tokenizer.encode("a " * 50)) == 4
    tail = WordTokenizer(tokenizer.tokens, max_length=2, truncation="start")
    assert tail.encode("a good film") == [2, 4]
    batch = tokenizer.encode_batch(["a", "good film", ""])
    assert batch.dtype == np.int32
    np.testing.assert_array_equal(batch, [[3, 0], [2, 4], [0, 0]])
    assert tokenizer.encode_batch(["a"] * 2, length=3).shape == (2, 3)


def test_decode_round_trip(tokenizer):
    ids = tokenizer.encode("a good film")
    assert tokenizer.decode(ids + [PAD_ID]) == "a good film"
    with pytest.raises(VocabularyError, match="out of range"):
        tokenizer.decode([99])


def test_json_round_trip_and_fingerprint(tokenizer, tmp_path):
    path = tmp_path / "vocabulary.json"
    tokenizer.save(path)
    loaded = WordTokenizer.load(path)
    assert loaded.tokens == tokenizer.tokens
    assert loaded.fingerprint == tokenizer.fingerprint
    assert loaded.max_length == 4
    loaded.check_fingerprint(tokenizer.fingerprint)
    other = WordTokenizer.fit(["something else"], max_size=6)
    with pytest.raises(VocabularyError, match="does not belong"):
        other.check_fingerprint(tokenizer.fingerprint)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["tokens"].append("extra"), "fingerprint does not match"),
        (lambda d: d["settings"].update(max_length=9), "fingerprint does not match"),
        (lambda d: d.update(format="something"), "Not an rnnkit word vocabulary"),
        (lambda d: d.update(version=7), "Unsupported vocabulary version"),
        (lambda d: d.pop("tokens"), "lacks the field"),
    ],
)
def test_edited_vocabulary_is_refused(tokenizer, edit, message):
    payload = json.loads(tokenizer.to_json())
    edit(payload)
    with pytest.raises(VocabularyError, match=message):
        WordTokenizer.from_json(json.dumps(payload))


def test_bad_files_and_bytes(tmp_path):
    with pytest.raises(VocabularyError, match="not valid JSON"):
        WordTokenizer.from_json("{not json")
    with pytest.raises(VocabularyError, match="Cannot read"):
        WordTokenizer.load(tmp_path / "missing.json")
    with pytest.raises(
        VocabularyError, match=r"not valid utf-8: byte 0xff .*\(line 2\)"
    ):
        decode_text_bytes(b"fine\nbad \xff byte")
    assert decode_text_bytes(b"\xef\xbb\xbfhello") == "hello"
    assert decode_text_bytes("caf\u00e9".encode("latin-1"), "latin-1") == "caf\u00e9"
    with pytest.raises(VocabularyError, match="Expected text as a str"):
        tokenize(b"bytes")


def test_text_module_imports_no_tensorflow():
    code = (
        "import sys; from rnnkit.edge.text import WordTokenizer; "
        "WordTokenizer.fit(['a b'], 10).encode('a b'); "
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.stdout.strip() == "False", result.stderr
