"""The music model end to end: train the quick preset, export, compare, generate."""

import json
import subprocess
import sys

import numpy as np
import pytest
from rnnkit.apps.music import data as music_data
from rnnkit.apps.music import midi as music_midi

from rnnkit.edge import music as edge_music
from rnnkit.errors import UsageError


@pytest.fixture(scope="module")
def jsb(data_dir):
    return music_data.load_dataset("jsb", data_dir)


@pytest.fixture(scope="module")
def trained(jsb, data_dir, tmp_path_factory):
    """`rnnkit train music` with the quick preset on 16 chorales, and its export."""
    from rnnkit.cli import main

    run_dir = tmp_path_factory.mktemp("music_run")
    status = main(
        ["train", "music", "--dataset", "jsb", "--preset", "quick"]
        + ["--data", str(data_dir), "-o", str(run_dir)]
    )
    assert status == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    splits = {"valid": jsb["valid"][:6], "test": jsb["test"][:6]}
    return {"dir": run_dir, "metrics": metrics, "splits": splits}


@pytest.mark.slow
def test_quick_preset_learns_and_writes_its_run_folder(trained):
    run_dir, metrics = trained["dir"], trained["metrics"]
    for name in (
        "model.keras",
        "model.music.json",
        "history.json",
        "metrics.json",
        "model_int8.tflite",
        "model_int8.manifest.json",
    ):
        assert (run_dir / name).is_file(), name
    assert metrics["preset"]["max_pieces"] == 16
    parity = json.loads((run_dir / "model_int8.parity.json").read_text())
    assert parity["form"] == "streaming" and parity["runs_in_tflite_micro"] is True
    history = json.loads((run_dir / "history.json").read_text())
    # Better than the untrained model's key-frequency guess (and far below 88 ln 2).
    assert history["val_loss"][-1] < history["val_loss"][0]
    assert metrics["valid"]["nll_per_step"] < 88 * np.log(2) / 3
    info = json.loads((run_dir / "model.music.json").read_text())
    assert info["context_steps"] == 160 and info["app"] == "music"


@pytest.mark.slow
def test_keras_loss_is_the_numpy_nll_per_step(trained):
    from rnnkit.apps.music.model import (
        compile_model,
        load_keras_model,
        predict_logits,
    )
    from rnnkit.apps.music.train import make_windows

    model = compile_model(load_keras_model(trained["dir"] / "model.keras"))
    rolls = trained["splits"]["valid"]
    x, y, w = make_windows(rolls, 160)
    keras_value = model.evaluate(x, y, sample_weight=w, verbose=0, batch_size=len(x))
    numpy_value = edge_music.nll_per_step(predict_logits(model, rolls), rolls)
    assert keras_value == pytest.approx(numpy_value, rel=1e-4)


@pytest.mark.slow
def test_streaming_int8_gives_keras_next_step_probabilities(trained, jsb):
    from rnnkit.apps.music.generate import load_edge_model
    from rnnkit.apps.music.model import load_keras_model

    keras_model = load_keras_model(trained["dir"] / "model.keras")
    edge_model = load_edge_model(trained["dir"] / "model_int8.tflite")
    assert edge_model.streaming and "tflite" in edge_model.path.suffix
    primer = jsb["test"][10][:24]
    frames = edge_music.input_frames(np.concatenate([primer, primer[:1]]))

    expected = edge_music.sigmoid(np.asarray(keras_model(frames[None]))[0])
    step = edge_music.stream_step(edge_model.stream())
    got = edge_music.sigmoid(np.stack([step(frame) for frame in frames]))
    # int8 weights and activations: the probabilities agree to a few hundredths.
    np.testing.assert_allclose(got, expected, atol=0.03)
    # The next-step distribution after the whole primer picks the same likely keys.
    top_keras = set(np.argsort(-expected[-1])[:4])
    top_edge = set(np.argsort(-got[-1])[:4])
    assert len(top_keras & top_edge) >= 3


@pytest.mark.slow
def test_streaming_int8_nll_is_within_a_tenth_of_keras(trained):
    from rnnkit.apps.music.evaluate import evaluate_rolls, load_scorer

    rolls = trained["splits"]["test"]
    keras_nll = evaluate_rolls(load_scorer(trained["dir"] / "model.keras"), rolls)[
        "nll_per_step"
    ]
    edge_nll = evaluate_rolls(load_scorer(trained["dir"] / "model_int8.tflite"), rolls)[
        "nll_per_step"
    ]
    assert abs(edge_nll - keras_nll) < 0.1


def _run_cli(args, check=True):
    code = (
        "import sys\n"
        "from rnnkit.cli import main\n"
        f"status = main({args!r})\n"
        "sys.stdout.write('TF_LOADED=%s\\n' % ('tensorflow' in sys.modules))\n"
        "sys.exit(status)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["model_int8.tflite", "model.keras"])
def test_generate_writes_a_midi_that_reads_back(trained, tmp_path, model_name, jsb):
    primer_file = music_midi.write_midi(jsb["test"][3][:8], tmp_path / "primer.mid")
    out = tmp_path / "song.mid"
    result = _run_cli(
        [
            "generate",
            "music",
            str(trained["dir"] / model_name),
            "--primer",
            str(primer_file),
            "--steps",
            "12",
            "--seed",
            "5",
            "--json",
            "-o",
            str(out),
        ]
    )
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-2])
    assert lines[-1] == f"TF_LOADED={model_name.endswith('.keras')}"
    assert summary["primer_steps"] == 8 and summary["generated_steps"] == 12
    roll = music_midi.read_midi(out)
    np.testing.assert_array_equal(roll[:8], jsb["test"][3][:8])
    assert len(roll) <= 20 and int(roll.sum(axis=1).max()) <= 4
    for suffix in (".png", ".wav"):
        assert out.with_suffix(suffix).stat().st_size > 0


@pytest.mark.slow
def test_generation_is_reproducible_with_a_seed(trained, tmp_path):
    from rnnkit.apps.music.generate import generate_roll, load_generator

    generator = load_generator(trained["dir"] / "model_int8.tflite")
    first = generate_roll(generator, 16, seed=11, temperature=0.8)
    second = generate_roll(generator, 16, seed=11, temperature=0.8)
    np.testing.assert_array_equal(first, second)
    assert int(first.sum(axis=1).max()) <= 4


@pytest.mark.slow
def test_evaluate_cli_json_on_tflite(trained, data_dir):
    result = _run_cli(
        [
            "evaluate",
            "music",
            str(trained["dir"] / "model_int8.tflite"),
            "--file",
            str(data_dir / "music/JSB_Chorales.pickle"),
            "--split",
            "test",
            "--limit",
            "4",
            "--json",
        ]
    )
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "TF_LOADED=False"
    metrics = json.loads(lines[-2])
    assert metrics["steps"] == sum(len(r) for r in trained["splits"]["test"][:4])
    assert 0 < metrics["nll_per_step"] < 61


@pytest.mark.slow
def test_primer_longer_than_the_context_is_a_cli_error(trained, tmp_path):
    long_roll = np.zeros((200, 88), np.uint8)
    long_roll[:, 40] = 1
    primer = music_midi.write_midi(long_roll, tmp_path / "long.mid")
    result = _run_cli(
        [
            "generate",
            "music",
            str(trained["dir"] / "model_int8.tflite"),
            "--primer",
            str(primer),
            "-o",
            str(tmp_path / "x.mid"),
        ],
        check=False,
    )
    assert result.returncode == 2
    assert "longer than the model's context" in result.stderr


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_both_cells_build_and_round_trip(cell, tmp_path):
    import keras
    from rnnkit.apps.music.model import build_model, compile_model, load_keras_model

    model = compile_model(build_model(cell, units=8, dropout=0.1, input_dropout=0.1))
    x = np.zeros((2, 5, 88), np.float32)
    model.save(tmp_path / "m.keras")
    again = load_keras_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again(x), model(x), atol=1e-6)
    assert isinstance(again.get_layer("logits"), keras.layers.Dense)


def test_ensemble_is_the_mean_of_its_members_and_streams(tmp_path):
    from rnnkit.apps.music.model import build_ensemble, build_model, load_keras_model
    from rnnkit.exporters import export_model

    from rnnkit.edge import EdgeModel

    members = [
        build_model("gru", units=8, dropout=0.3, input_dropout=0.2),
        build_model("lstm", units=6),
    ]
    ensemble = build_ensemble(members)
    x = (np.random.default_rng(0).random((2, 7, 88)) < 0.1).astype(np.float32)
    mean = (np.asarray(members[0](x)) + np.asarray(members[1](x))) / 2
    np.testing.assert_allclose(ensemble(x), mean, atol=1e-6)
    ensemble.save(tmp_path / "ensemble.keras")
    again = load_keras_model(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(again(x), mean, atol=1e-6)
    # One streaming file with both members' states, stepping to the same logits.
    result = export_model(again, tmp_path / "e.tflite", streaming=True)
    assert len(result.parity["inputs"]) == 1 + 3  # frame, GRU h, LSTM h and c
    stepped = EdgeModel(result.path).run(x)[0]
    np.testing.assert_allclose(stepped, mean, atol=1e-5)
    with pytest.raises(UsageError, match="two or more"):
        build_ensemble(members[:1])


def test_a_non_music_keras_model_is_refused(tmp_path):
    import keras
    from rnnkit.apps.music.model import load_keras_model

    inputs = keras.Input((None, 4))
    keras.Model(inputs, keras.layers.Dense(3)(inputs)).save(tmp_path / "other.keras")
    with pytest.raises(Exception, match="88 outputs"):
        load_keras_model(tmp_path / "other.keras")
    with pytest.raises(UsageError, match="not found"):
        load_keras_model(tmp_path / "missing.keras")


@pytest.mark.slow
@pytest.mark.parametrize("with_data", [False, True], ids=["no-data", "data"])
def test_demo_continues_a_chorale(tmp_path, with_data, request):
    from rnnkit.apps.music.cli import EXAMPLES_DIR, demo

    data_dir = request.getfixturevalue("data_dir") if with_data else None
    demo(tmp_path, data_dir)
    for suffix in (".mid", ".png", ".wav"):
        assert (tmp_path / f"continuation{suffix}").stat().st_size > 0
    roll = music_midi.read_midi(tmp_path / "continuation.mid")
    if with_data:
        primer = music_data.load_dataset("jsb", data_dir)["test"][0][:8]
    else:
        primer = music_midi.read_midi(EXAMPLES_DIR / "primer.mid")
    np.testing.assert_array_equal(roll[: len(primer)], primer)
    assert len(roll) <= len(primer) + 48


@pytest.mark.slow
def test_refit_trains_on_train_and_valid_for_the_fixed_epochs(jsb, tmp_path):
    """A refit run has no early stopping and sees the validation pieces too."""
    import dataclasses

    from rnnkit.apps.music.train import get_preset, train

    splits = {"train": jsb["train"][:4], "valid": jsb["valid"][:3], "test": []}
    preset = dataclasses.replace(
        get_preset("quick"), epochs=3, patience=1, refit=True, learning_rate=0.0
    )
    metrics = train("jsb", preset, tmp_path, splits=splits, seed=0, verbose=0)
    # With a zero learning rate validation never improves: early stopping with
    # patience 1 would stop after two epochs, a refit run does all three.
    assert metrics["epochs_run"] == 3
    windows = sum(
        -(-len(roll) // preset.window) for roll in splits["train"] + splits["valid"]
    )
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["loss"]) == 3
    assert metrics["training_windows"] == windows
    assert get_preset("full").refit and not get_preset("full-select").refit
