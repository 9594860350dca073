"""Fixtures shared by every test: data location, seeds and quiet TensorFlow."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared dataset folder; the test suite needs it (CI sets RNNKIT_DATA)."""
    value = os.environ.get("RNNKIT_DATA")
    if not value or not Path(value).is_dir():
        raise RuntimeError(
            "These tests read the real datasets: set RNNKIT_DATA to the data folder "
            f"(`make test` uses ../shared/data). Received: RNNKIT_DATA={value!r}"
        )
    return Path(value)


@pytest.fixture(autouse=True)
def _fixed_seeds():
    """Every test starts from the same random state."""
    import random

    import numpy as np

    random.seed(1234)
    np.random.seed(1234)
    try:
        import keras

        keras.utils.set_random_seed(1234)
    except ImportError:
        pass
    yield
