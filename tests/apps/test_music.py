"""The music app without TensorFlow: data, safe pickles, MIDI, metric, sampling, audio."""

import math
import os
import pickle
import wave

import mido
import numpy as np
import pytest
from rnnkit.apps.music import data as music_data
from rnnkit.apps.music import midi as music_midi
from rnnkit.apps.music import render
from rnnkit.apps.music.generate import check_primer

from rnnkit.edge import music as edge_music
from rnnkit.errors import UsageError

# --- data ------------------------------------------------------------------------


def test_jsb_pickle_loads_with_the_restricted_unpickler(data_dir):
    splits = music_data.load_dataset("jsb", data_dir)
    assert {k: len(v) for k, v in splits.items()} == {
        "train": 229,
        "valid": 76,
        "test": 77,
    }
    assert sum(len(r) for r in splits["train"]) == 13807
    assert all(r.shape[1] == 88 and r.dtype == np.uint8 for r in splits["test"])
    # The published format: at most four voices sound at once.
    assert max(int(r.sum(axis=1).max()) for r in splits["train"]) <= 4


def test_jsb_mat_matches_the_pickle(data_dir):
    from_pickle = music_data.load_dataset("jsb", data_dir)
    from_mat = music_data.load_dataset("jsb-mat", data_dir)
    for split in music_data.SPLITS:
        assert len(from_pickle[split]) == len(from_mat[split])
        for a, b in zip(from_pickle[split], from_mat[split], strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["nottingham", "musedata", "piano"])
def test_mat_datasets_load(data_dir, name):
    splits = music_data.load_dataset(name, data_dir)
    assert all(len(splits[s]) > 0 for s in music_data.SPLITS)
    assert all(r.ndim == 2 and r.shape[1] == 88 for r in splits["valid"])


class _RunsCode:
    """A pickle payload that would call os.system when unpickled normally."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps({"train": [_RunsCode(marker)]}))
    with pytest.raises(UsageError, match="posix.system|os.system|does not allow"):
        music_data.load_pitch_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload, message",
    [
        ([1, 2, 3], "top level is a list"),
        ({"train": [], "valid": []}, "missing"),
        ({"train": [[(60,)]], "valid": "x", "test": []}, "'valid' is a str"),
        ({"train": [[("C4",)]], "valid": [], "test": []}, "not integers"),
        ({"train": [[(12,)]], "valid": [], "test": []}, "88-key range"),
        ({"train": [[]], "valid": [], "test": []}, "non-empty"),
    ],
)
def test_pickle_with_the_wrong_structure_is_a_clear_error(tmp_path, payload, message):
    path = tmp_path / "bad.pickle"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UsageError, match=message):
        music_data.load_pitch_pickle(path)


def test_pickle_with_float_numpy_scalars_is_refused(tmp_path):
    path = tmp_path / "floats.pickle"
    path.write_bytes(pickle.dumps({"train": [[(np.float64(60.0),)]]}, protocol=2))
    with pytest.raises(UsageError, match="not an integer|other than a plain integer"):
        music_data.load_pitch_pickle(path)


def test_not_a_pickle_is_a_clear_error(tmp_path):
    path = tmp_path / "noise.pickle"
    path.write_bytes(b"\x00\x01 this is not a pickle")
    with pytest.raises(UsageError):
        music_data.load_pitch_pickle(path)


def test_music21_chorales_load_offline():
    splits = music_data.load_music21_bach(limit=4)
    rolls = [r for s in music_data.SPLITS for r in splits[s]]
    assert len(rolls) == 4
    assert all(r.shape[1] == 88 and len(r) > 16 for r in rolls)
    assert max(int(r.sum(axis=1).max()) for r in rolls) <= 4


def test_midi_folder_dataset(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(12):
        roll = (rng.random((20, 88)) < 0.03).astype(np.uint8)
        music_midi.write_midi(roll, tmp_path / "sub" / f"piece{i}.mid")
    splits = music_data.load_dataset(str(tmp_path))
    assert sum(len(splits[s]) for s in music_data.SPLITS) == 12
    assert splits["train"]


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(UsageError, match="Expected one of"):
        music_data.load_dataset("no-such-dataset")


# --- MIDI --------------------------------------------------------------------------


def _chord_roll():
    return edge_music.pitches_to_roll(
        [(60, 64, 67), (60, 64, 67), (), (62, 65, 69, 72), (21,), (108,)]
    )


@pytest.mark.parametrize("step", [1.0, 0.5])
def test_midi_round_trip(tmp_path, step):
    roll = _chord_roll()
    path = music_midi.write_midi(roll, tmp_path / "out.mid", step=step)
    np.testing.assert_array_equal(music_midi.read_midi(path, step=step), roll)


def test_midi_quantizes_in_beats(tmp_path):
    # Eighth notes read at a quarter-note step: the note on each beat is kept.
    midi = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    for pitch in (60, 62, 64, 65):
        track.append(mido.Message("note_on", note=pitch, velocity=90, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=48))
    midi.save(tmp_path / "eighths.mid")
    roll = music_midi.read_midi(tmp_path / "eighths.mid", step=1.0)
    assert edge_music.roll_to_pitches(roll) == [(60,), (64,)]
    fine = music_midi.read_midi(tmp_path / "eighths.mid", step=0.5)
    assert edge_music.roll_to_pitches(fine) == [(60,), (62,), (64,), (65,)]


def test_corrupt_midi_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.mid"
    path.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02garbage")
    with pytest.raises(UsageError, match="MIDI"):
        music_midi.read_midi(path)
    text = tmp_path / "notes.mid"
    text.write_text("this is a text file")
    with pytest.raises(UsageError, match="MIDI"):
        music_midi.read_midi(text)


def test_midi_without_notes_is_a_clear_error(tmp_path):
    midi = mido.MidiFile()
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000)]))
    midi.save(tmp_path / "empty.mid")
    with pytest.raises(UsageError, match="no notes"):
        music_midi.read_midi(tmp_path / "empty.mid")


@pytest.mark.parametrize("pitch", [12, 120])
def test_midi_pitch_off_the_keyboard_is_a_clear_error(tmp_path, pitch):
    midi = mido.MidiFile()
    midi.tracks.append(
        mido.MidiTrack(
            [
                mido.Message("note_on", note=pitch, velocity=90, time=0),
                mido.Message("note_off", note=pitch, velocity=0, time=480),
            ]
        )
    )
    midi.save(tmp_path / "low.mid")
    with pytest.raises(UsageError, match="88-key range"):
        music_midi.read_midi(tmp_path / "low.mid")


# --- the metric -------------------------------------------------------------------


def test_nll_per_step_against_a_hand_computed_value():
    # Step 0: every key at p = 1/4, key 0 sounds:  -ln(1/4) - 87 ln(3/4).
    # Step 1: every key at p = 1/2 (logit 0), keys 3 and 5 sound: 88 ln 2.
    # Step 2 (a second piece): every key at p = 3/4, nothing sounds: -88 ln(1/4).
    logits_a = np.array([[-math.log(3.0)] * 88, [0.0] * 88])
    targets_a = np.zeros((2, 88))
    targets_a[0, 0] = 1
    targets_a[1, [3, 5]] = 1
    logits_b = np.full((1, 88), math.log(3.0))
    targets_b = np.zeros((1, 88))
    expected = (
        (math.log(4.0) - 87 * math.log(0.75))
        + 88 * math.log(2.0)
        + (-88 * math.log(0.25))
    ) / 3
    got = edge_music.nll_per_step([logits_a, logits_b], [targets_a, targets_b])
    assert got == pytest.approx(expected, rel=1e-12)


def test_nll_is_finite_for_confident_logits():
    logits = np.full((1, 88), -60.0)
    targets = np.zeros((1, 88))
    targets[0, 10] = 1
    assert edge_music.nll_per_step(logits, targets) == pytest.approx(60.0, rel=1e-9)


def test_frame_accuracy_against_a_hand_computed_value():
    logits = np.full((2, 88), -5.0)
    logits[0, [1, 2]] = 5.0  # predicted on at step 0: keys 1, 2
    logits[1, [7]] = 5.0  # step 1: key 7
    targets = np.zeros((2, 88))
    targets[0, [1, 3]] = 1  # TP key 1, FP key 2, FN key 3
    targets[1, [7]] = 1  # TP key 7
    assert edge_music.frame_accuracy(logits, targets) == pytest.approx(2 / 4)


# --- sampling ----------------------------------------------------------------------


def test_sample_frame_is_reproducible_and_respects_the_cap():
    logits = np.full(88, 2.0)  # every key likely
    logits[:10] += np.arange(10)
    first = edge_music.sample_frame(logits, np.random.default_rng(7), max_notes=4)
    second = edge_music.sample_frame(logits, np.random.default_rng(7), max_notes=4)
    np.testing.assert_array_equal(first, second)
    assert first.sum() == 4
    # The cap keeps the most probable of the drawn keys.
    assert set(np.flatnonzero(first)) <= set(range(10))


@pytest.mark.parametrize("temperature, fewer", [(0.5, True), (2.0, False)])
def test_temperature_sharpens_or_flattens(temperature, fewer):
    logits = np.full(88, -2.0)
    base = sum(
        edge_music.sample_frame(logits, np.random.default_rng(s), 1.0, None).sum()
        for s in range(200)
    )
    scaled = sum(
        edge_music.sample_frame(
            logits, np.random.default_rng(s), temperature, None
        ).sum()
        for s in range(200)
    )
    assert (scaled < base) == fewer


def test_temperature_zero_is_the_most_likely_frame():
    logits = np.linspace(-3, 3, 88)
    frame = edge_music.sample_frame(logits, np.random.default_rng(0), 0.0, None)
    np.testing.assert_array_equal(frame, (logits >= 0).astype(np.uint8))


class _CountingModel:
    """A deterministic 'recurrent model': logits depend on the frames seen so far."""

    def __init__(self):
        self.inputs = []

    def __call__(self, frame):
        self.inputs.append(np.asarray(frame).copy())
        total = np.sum(self.inputs, axis=0)
        return 1.5 - 0.7 * total - 0.05 * np.arange(88)


def test_generate_feeds_start_frame_then_primer_then_samples():
    primer = _chord_roll()
    model = _CountingModel()
    out = edge_music.generate(model, 10, primer=primer, seed=3, max_notes=3)
    assert out.shape == (10, 88) and out.dtype == np.uint8
    assert int(out.sum(axis=1).max()) <= 3
    # start frame + primer + all generated frames but the last one
    assert len(model.inputs) == 1 + len(primer) + 9
    np.testing.assert_array_equal(model.inputs[0], np.zeros(88))
    np.testing.assert_array_equal(np.stack(model.inputs[1 : 1 + len(primer)]), primer)
    np.testing.assert_array_equal(np.stack(model.inputs[1 + len(primer) :]), out[:-1])
    again = edge_music.generate(
        _CountingModel(), 10, primer=primer, seed=3, max_notes=3
    )
    np.testing.assert_array_equal(out, again)


def test_primer_longer_than_the_context_is_refused():
    with pytest.raises(UsageError, match="longer than the model's context"):
        check_primer(np.zeros((200, 88), np.uint8), context_steps=160)
    with pytest.raises(UsageError, match="shape"):
        check_primer(np.zeros((20, 12), np.uint8), context_steps=160)


def test_pitches_to_roll_round_trip_and_range():
    steps = [(43, 55, 60, 72), (), (21, 108)]
    assert edge_music.roll_to_pitches(edge_music.pitches_to_roll(steps)) == steps
    with pytest.raises(edge_music.MusicInputError, match="88-key range"):
        edge_music.pitches_to_roll([(20,)])


# --- listening and looking --------------------------------------------------------


def test_wav_rendering(tmp_path):
    roll = _chord_roll()
    path = render.write_wav(roll, tmp_path / "out.wav", step_seconds=0.25)
    with wave.open(str(path)) as handle:
        assert handle.getframerate() == render.SAMPLE_RATE
        assert handle.getnchannels() == 1
        frames = handle.getnframes()
        audio = np.frombuffer(handle.readframes(frames), "<i2")
    expected = len(roll) * round(0.25 * render.SAMPLE_RATE) + render.SAMPLE_RATE // 2
    assert frames == expected
    # The rest (step 2) is quieter than the chords around it.
    step = round(0.25 * render.SAMPLE_RATE)
    loud = np.abs(audio[: 2 * step]).mean()
    assert np.abs(audio[2 * step + 2000 : 3 * step]).mean() < 0.1 * loud
    assert not list(tmp_path.glob("*.tmp"))


def test_piano_roll_png(tmp_path):
    path = render.plot_piano_roll(_chord_roll(), tmp_path / "roll.png", primer_steps=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("pitch, hertz", [(69, 440.0), (60, 261.63), (45, 110.0)])
def test_synthesizer_plays_the_right_pitch(pitch, hertz):
    audio = render.synthesize(edge_music.pitches_to_roll([(pitch,)] * 4), 0.5)
    spectrum = np.abs(np.fft.rfft(audio))
    frequencies = np.fft.rfftfreq(len(audio), 1 / render.SAMPLE_RATE)
    assert frequencies[np.argmax(spectrum)] == pytest.approx(hertz, abs=1.0)


def test_output_that_is_not_midi_is_refused_before_generating(tmp_path):
    from rnnkit.apps.music.cli import MODELS_DIR
    from rnnkit.apps.music.generate import generate_files

    with pytest.raises(UsageError, match=r"must be a \.mid file"):
        generate_files(MODELS_DIR / "model_int8.tflite", tmp_path / "song.txt")
    assert not list(tmp_path.iterdir())


def test_shipped_model_metadata_states_its_context():
    from rnnkit.apps.music.cli import MODELS_DIR
    from rnnkit.apps.music.generate import load_generator

    generator = load_generator(MODELS_DIR / "model_int8.tflite")
    assert generator.kind == "tflite"
    assert generator.info["context_steps"] == 160
    assert generator.info["step_beats"] == 1.0
