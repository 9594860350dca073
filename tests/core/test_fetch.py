"""`rnnkit data list` / `rnnkit data fetch`, against a real local HTTP mirror.

The machines that run these tests are offline, so the downloads come from an
HTTP server on 127.0.0.1 that serves the shared data folder (a mirror in the
data-folder layout); the digests checked are the ones recorded for the
original sources.
"""

import functools
import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rnnkit.fetch import DATASETS, FetchError, fetch, get_dataset, write_glue_tsv


@pytest.fixture()
def mirror(data_dir):
    """Serves a folder over HTTP on 127.0.0.1; yields (start(folder) -> url)."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(
            http.server.SimpleHTTPRequestHandler, directory=str(folder)
        )
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "rnnkit", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("name", ["spa-eng", "boulanger-mat", "jsb-chorales", "sst2"])
def test_fetch_from_mirror_verifies_and_lays_out_files(
    tmp_path, data_dir, mirror, name
):
    url = mirror(data_dir)
    paths = fetch(name, tmp_path, mirror=url)
    for path in paths:
        relative = path.relative_to(tmp_path)
        assert path.read_bytes() == (data_dir / relative).read_bytes()
    assert not list(tmp_path.rglob(".*"))  # no temporary file left behind


def test_fetch_rejects_a_file_whose_digest_differs(tmp_path, data_dir, mirror):
    served = tmp_path / "served" / "translation"
    served.mkdir(parents=True)
    damaged = bytearray((data_dir / "translation" / "spa-eng.zip").read_bytes())
    damaged[1000] ^= 0xFF
    (served / "spa-eng.zip").write_bytes(bytes(damaged))
    target = tmp_path / "data"

    with pytest.raises(FetchError, match="SHA-256.*Expected: f80e581a"):
        fetch("spa-eng", target, mirror=mirror(tmp_path / "served"))
    assert not (target / "translation" / "spa-eng.zip").exists()
    assert not list((target / "translation").iterdir())


def test_fetch_offline_fails_with_one_clear_line(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = _cli(
        "data", "fetch", "spa-eng", "--data", str(tmp_path),
        "--mirror", f"http://127.0.0.1:{port}",
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Cannot download" in lines[0], result.stderr
    assert "network connection" in lines[0]


def test_unknown_dataset_is_a_usage_error(tmp_path):
    result = _cli("data", "fetch", "mnist", "--data", str(tmp_path))
    assert result.returncode == 2
    assert "Expected one of" in result.stderr and "'mnist'" in result.stderr


def test_data_list_shows_files_found_and_missing(data_dir):
    result = _cli("data", "list", "--data", str(data_dir), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    by_name = {d["name"]: d for d in report["datasets"]}
    assert sorted(by_name) == sorted(DATASETS)
    spa = by_name["spa-eng"]["files"]
    assert spa["translation/spa-eng/spa.txt"] == str(
        data_dir / "translation" / "spa-eng" / "spa.txt"
    )
    # The labelled sentence-level test split is held out of the shared folder.
    sentence = by_name["sst2-sentence-level"]["files"]
    assert sentence["sentiment/sst2_sentence_level/stsa.binary.test"] is None
    assert sentence["sentiment/sst2_sentence_level/stsa.binary.dev"] is not None

    text = _cli("data", "list", "--data", str(data_dir))
    assert (
        text.returncode == 0 and "missing" in text.stderr and "spa-eng" in text.stderr
    )


@pytest.mark.parametrize("split", ["dev", "test"])
def test_tfds_rows_are_written_in_the_glue_layout(tmp_path, data_dir, split):
    # Rows shaped like tensorflow-datasets glue/sst2 examples, taken from the
    # real GLUE file, must come out byte for byte as that file.
    original = data_dir / "sentiment" / "sst2_glue" / f"{split}.tsv"
    lines = original.read_text(encoding="utf-8").splitlines()[1:]
    rows = []
    for index, line in enumerate(lines):
        first, second = line.split("\t")
        if split == "test":
            rows.append({"idx": int(first), "sentence": second.encode(), "label": -1})
        else:
            rows.append(
                {"idx": index, "sentence": first.encode(), "label": int(second)}
            )
    if split == "test":
        rows.reverse()  # tfds order is not GLUE's; the writer sorts by index
    written = write_glue_tsv(rows, tmp_path / f"{split}.tsv", test=split == "test")
    assert written.read_bytes() == original.read_bytes()


def test_dataset_names_are_forgiving_about_case_and_separators():
    assert get_dataset("SPA_ENG") is get_dataset("spa-eng")


def test_import_downloads_nothing():
    # The module defines the catalogue only; fetching needs an explicit call.
    code = "import rnnkit.fetch, sys; print('urllib.request' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.stdout.strip() == "False"


def test_fetch_skips_files_already_present(tmp_path, data_dir):
    target = tmp_path / "data"
    shutil.copytree(data_dir / "music", target / "music")
    # No mirror and no network: it must not try to download at all.
    paths = fetch("boulanger-mat", target)
    assert all(p.exists() for p in paths)
