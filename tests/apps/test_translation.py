"""The translation app end to end: quick training on real pairs, decoding, export.

One quick-preset model (a few thousand real spa.txt pairs) is trained once per
module and shared by every test.
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from rnnkit.apps.translation import data as data_lib
from rnnkit.apps.translation import train as train_lib

from rnnkit.cli import main
from rnnkit.errors import UsageError

SENTENCES = ["Él tiene mala pata.", "Tengo hambre.", "¿Dónde está Tom?", "Hace frío."]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("translation_run")
    preset = train_lib.get_preset("quick", epochs=3, max_train_pairs=3000)
    train_lib.train("spa-eng", preset, out, data_dir, export=True)
    return out


@pytest.fixture(scope="module")
def keras_translator(run_dir):
    from rnnkit.apps.translation.runtime import load_translator

    return load_translator(run_dir)


@pytest.fixture(scope="module")
def valid_sources(data_dir):
    pairs = data_lib.load_split("spa-eng", data_dir)["valid"]
    return [p.source for p in pairs[:12]] + SENTENCES


@pytest.mark.slow
def test_run_folder_holds_model_vocabularies_metrics_and_plots(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "valid"
    assert 0.0 <= metrics["bleu"] <= 100.0
    assert 0.0 < metrics["chrf"] <= 100.0
    metadata = json.loads((run_dir / "translation.json").read_text())
    assert metadata["direction"] == "spa-eng"
    for name in ("model.keras", "source_vocab.json", "target_vocab.json"):
        assert (run_dir / name).is_file()
    for name in ("attention.png", "training_curves.png"):
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_batched_greedy_equals_one_sentence_at_a_time(keras_translator, valid_sources):
    batched = keras_translator.greedy_batch(valid_sources, batch_size=5)
    single = [keras_translator.translate(s).text for s in valid_sources]
    assert batched == single


@pytest.mark.slow
def test_beam_search_returns_ranked_hypotheses_with_attention(keras_translator):
    from rnnkit.edge import translate as edge

    source = edge.encode_source(
        SENTENCES[0], keras_translator.source_vocab, keras_translator.max_source_len
    )
    beams = edge.beam_search(
        keras_translator.encode,
        keras_translator.step,
        source.ids,
        keras_translator.max_target_len,
        beam_width=3,
        alpha=0.0,
    )
    assert 1 <= len(beams) <= 3
    scores = [b.score for b in beams]
    assert scores == sorted(scores, reverse=True)
    for beam in beams:
        assert beam.attention.shape == (len(beam.ids), keras_translator.max_source_len)
        np.testing.assert_allclose(beam.attention.sum(-1), 1.0, atol=1e-4)


@pytest.mark.slow
def test_long_input_is_truncated(keras_translator):
    translation = keras_translator.translate("Hola " * 40)
    assert translation.truncated == 40 - (keras_translator.max_source_len - 1)


@pytest.mark.slow
@pytest.mark.parametrize("beam", ["1", "3"])
def test_translate_command_on_keras(run_dir, tmp_path, capsys, beam):
    png = tmp_path / "attention.png"
    status = main(
        ["translate", str(run_dir), SENTENCES[0], "--beam", beam]
        + ["--attention-png", str(png), "--json"]
    )
    assert status == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    result = payload["results"][0]
    assert payload["backend"] == "keras"
    assert result["source_tokens"] == ["Él", "tiene", "mala", "pata", "."]
    assert len(result["attention"]) == len(result["tokens"])
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_evaluate_command_on_files(run_dir, tmp_path, capsys, data_dir):
    pairs = data_lib.load_split("spa-eng", data_dir)["valid"][:20]
    source, reference = tmp_path / "src.txt", tmp_path / "ref.txt"
    source.write_text("\n".join(p.source for p in pairs) + "\n")
    reference.write_text("\n".join(p.target for p in pairs) + "\n")
    status = main(
        ["evaluate", "translation", str(run_dir), "--source", str(source)]
        + ["--reference", str(reference), "--json"]
    )
    assert status == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["sentences"] == 20
    assert 0.0 <= payload["bleu"] <= 100.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "source_text, reference_text, expected",
    [
        ("Hola.\nAdiós.\n", "Hello.\n", "same number of lines"),
        ("Hola.\n\n", "Hello.\nBye.\n", "empty lines"),
    ],
)
def test_evaluate_command_rejects_bad_files(
    run_dir, tmp_path, capsys, source_text, reference_text, expected
):
    source, reference = tmp_path / "src.txt", tmp_path / "ref.txt"
    source.write_text(source_text)
    reference.write_text(reference_text)
    status = main(
        ["evaluate", "translation", str(run_dir), "--source", str(source)]
        + ["--reference", str(reference)]
    )
    assert status == 2
    assert expected in capsys.readouterr().err


@pytest.mark.slow
def test_translate_command_rejects_empty_input(run_dir, capsys):
    assert main(["translate", str(run_dir), "   "]) == 2
    assert "Nothing to translate" in capsys.readouterr().err


@pytest.mark.slow
def test_mismatched_vocabulary_file_is_rejected(run_dir, tmp_path):
    from rnnkit.apps.translation.runtime import load_translator

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    shutil.copy(copy / "source_vocab.json", copy / "target_vocab.json")
    with pytest.raises(UsageError, match="target vocabulary does not belong"):
        load_translator(copy)


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["float32", "int8"])
def test_export_writes_both_halves_with_metadata(run_dir, quantize):
    from rnnkit.edge import EdgeModel

    metrics = json.loads((run_dir / "metrics.json").read_text())
    for role in ("encoder", "decoder"):
        assert "error" not in metrics["export"][f"{role}_{quantize}"]
        model = EdgeModel(str(run_dir / f"{role}_{quantize}.tflite"))
        assert model.metadata["role"] == role
        assert model.metadata["max_source_len"] == 10
        assert len(model.metadata["target_vocabulary"]) == 1000
    if quantize == "int8":
        parity = json.loads((run_dir / "encoder_int8.parity.json").read_text())
        # MaskedMean and PaddingMask mark their intermediates (`call_with_sites`),
        # so the int8 encoder keeps its recurrent loop instead of being unrolled.
        assert {entry["lowered_to"] for entry in parity["lowered"]} == {"while_loop"}
        assert parity["float_ops"] == []


@pytest.mark.slow
def test_edge_greedy_float_gives_the_keras_tokens(
    run_dir, keras_translator, valid_sources
):
    from rnnkit.apps.translation.runtime import load_translator

    edge_translator = load_translator(run_dir / "encoder_float32.tflite")
    assert edge_translator.backend == "tflite"
    for text in valid_sources:
        assert (
            edge_translator.translate(text).tokens
            == keras_translator.translate(text).tokens
        )


@pytest.mark.slow
def test_edge_int8_beam_search_translates(run_dir):
    from rnnkit.apps.translation.runtime import load_translator

    edge_translator = load_translator(run_dir / "decoder_int8.tflite")
    translation = edge_translator.translate(SENTENCES[0], beam_width=3)
    assert translation.attention.shape == (len(translation.tokens), 6)


@pytest.mark.slow
def test_tflite_translate_command_never_imports_tensorflow(run_dir):
    code = (
        "import sys\n"
        "from rnnkit.cli import main\n"
        f"status = main(['translate', {str(run_dir / 'encoder_int8.tflite')!r}, "
        "'Él tiene mala pata.', '--beam', '2'])\n"
        "assert status == 0, status\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip()
