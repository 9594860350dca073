"""The one-way flow core -> exporters -> apps, with the edge runtime beside them."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "keras", "tf_keras")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize(
    "path", _files("rnnkit"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_core_and_edge_import_no_app_or_exporter(path):
    imported = _imports(path)
    bad = {n for n in imported if n.startswith(("rnnkit.apps", "rnnkit.exporters"))}
    assert not bad, f"{path} imports {bad}"
    if "edge" in path.relative_to(ROOT).parts:
        bad = {
            n
            for n in imported
            if n.split(".")[0] in HEAVY
            or (n.startswith("rnnkit") and not n.startswith("rnnkit.edge"))
        }
        assert not bad, f"the edge runtime file {path} imports {bad}"


@pytest.mark.parametrize(
    "path", _files("exporters"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_exporters_import_no_app(path):
    bad = {n for n in _imports(path) if n.startswith("rnnkit.apps")}
    assert not bad, f"{path} imports {bad}"


def test_import_rnnkit_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys, rnnkit, rnnkit.edge; print('tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.stdout.strip() == "False", result.stderr
