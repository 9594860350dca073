"""Loading .keras files: clear errors for bad files, and safe_mode stays on."""

import zipfile

import keras
import numpy as np
import pytest

from rnnkit import models
from rnnkit.errors import ModelFileError, UsageError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model = models.sequence_classifier(2, vocab_size=12, units=4)
    models.save_model(model, path)
    return path


def test_truncated_file_is_a_clear_error(saved, tmp_path):
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="truncated|damaged|not a complete"):
        models.load_model(truncated)


def test_zip_without_a_model_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(ModelFileError, match="config.json"):
        models.load_model(path)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("text.keras", b"hello", "not a .keras archive"),
        ("model.h5", b"hello", "'.keras' model file"),
    ],
)
def test_other_files_are_clear_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        models.load_model(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        models.load_model(tmp_path / "absent.keras")


def test_lambda_code_is_refused_by_safe_mode(tmp_path):
    inputs = keras.Input((3,))
    outputs = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ModelFileError, match="safe_mode|could not be loaded"):
        models.load_model(path)


def test_save_needs_keras_suffix_and_is_atomic(saved, tmp_path):
    model = models.load_model(saved)
    with pytest.raises(UsageError, match=".keras"):
        models.save_model(model, tmp_path / "model.h5")
    path = models.save_model(model, tmp_path / "again.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.keras"]
    tokens = np.array([[1, 2, 3]])
    np.testing.assert_array_equal(
        np.asarray(models.load_model(path)(tokens)), np.asarray(model(tokens))
    )
