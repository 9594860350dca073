"""The edge runtime loads and runs a model in a venv with only numpy and ai-edge-litert."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from exporter_models import frames_model
from rnnkit.exporters import export_model

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_edge_runtime_never_imports_tensorflow(tmp_path):
    rng = np.random.default_rng(5)
    model = frames_model("lstm", 1)
    frames = rng.normal(size=(2, 5, 6)).astype(np.float32)
    result = export_model(model, tmp_path / "m.tflite", representative_data=frames)
    expected = model.predict(frames, verbose=0)
    np.save(tmp_path / "frames.npy", frames)
    np.save(tmp_path / "expected.npy", expected)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "numpy", "ai-edge-litert"],
        check=True,
        timeout=600,
    )
    # The venv has no TensorFlow at all; the repository is put on sys.path.
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from rnnkit.edge import EdgeModel
        model = EdgeModel({str(result.path)!r})
        got = model.run(np.load({str(tmp_path / "frames.npy")!r}))[0]
        error = float(np.max(np.abs(got - np.load({str(tmp_path / "expected.npy")!r}))))
        heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))
        print(error, heavy)
        """
    )
    completed = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr
    error, heavy = completed.stdout.strip().split(" ", 1)
    assert heavy == "[]"
    assert float(error) < 1e-5
