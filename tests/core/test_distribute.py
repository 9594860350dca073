"""Multi-worker training with rnnkit's distributed trainer, on real worker processes.

The test starts this file as a script: two workers on 127.0.0.1 (TF_CONFIG each,
MultiWorkerMirroredStrategy, ring all-reduce on CPU), then the same run on one
worker. Both workers must finish with the same weights, and the one-worker run
must follow the same loss curve (the global batch is the same, so the updates
are the same up to float rounding).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EPOCHS = 3


def _train(run_dir: Path) -> None:
    from rnnkit.training import fit, get_strategy, make_optimizer

    # The strategy comes first: TensorFlow allows no other work before it.
    strategy = get_strategy("multi_worker", collective="ring")
    import keras

    keras.utils.set_random_seed(21)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(96, 8, 3)).astype("float32")
    y = x[:, :, :1].mean(axis=1)
    # Built outside the strategy's scope on purpose: fit rebuilds it there.
    model = keras.Sequential(
        [keras.Input((8, 3)), keras.layers.LSTM(6), keras.layers.Dense(1)]
    )
    model.compile(
        optimizer=make_optimizer("adam", 1e-2, global_clipnorm=1.0), loss="mse"
    )
    history = fit(
        model,
        (x, y),
        (x[:32], y[:32]),
        epochs=EPOCHS,
        run_dir=run_dir,
        batch_size=16,
        strategy=strategy,
        gradient_norms=True,
        verbose=0,
        tensorboard=False,
    )
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    out = {
        "history": history,
        "weights": [w.tolist() for w in model.get_weights()],
        "replicas": strategy.num_replicas_in_sync,
    }
    (run_dir / f"result-{index}.json").write_text(json.dumps(out))


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_cluster(run_dir: Path, ports: list[int]) -> list[subprocess.Popen]:
    addresses = [f"127.0.0.1:{p}" for p in ports]
    processes = []
    for index in range(len(ports)):
        tf_config = {
            "cluster": {"worker": addresses},
            "task": {"type": "worker", "index": index},
        }
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps(tf_config),
            TF_CPP_MIN_LOG_LEVEL="2",
            CUDA_VISIBLE_DEVICES="",
        )
        processes.append(
            subprocess.Popen(
                [sys.executable, __file__, str(run_dir)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
    return processes


def _results(run_dir: Path, processes: list[subprocess.Popen]) -> list[dict]:
    try:
        for process in processes:
            _, stderr = process.communicate(timeout=400)
            assert process.returncode == 0, stderr.decode()[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return [
        json.loads((run_dir / f"result-{i}.json").read_text())
        for i in range(len(processes))
    ]


@pytest.mark.slow
def test_two_workers_agree_and_match_one_worker(tmp_path):
    # Both clusters run at the same time (on separate ports) to save wall time.
    ports = _free_ports(3)
    two_workers = _start_cluster(tmp_path / "two", ports[:2])
    one_worker = _start_cluster(tmp_path / "one", ports[2:])
    try:
        two = _results(tmp_path / "two", two_workers)
        one = _results(tmp_path / "one", one_worker)
    finally:
        for process in two_workers + one_worker:
            if process.poll() is None:
                process.kill()

    assert [r["replicas"] for r in two] == [2, 2] and one[0]["replicas"] == 1
    for a, b in zip(two[0]["weights"], two[1]["weights"], strict=True):
        np.testing.assert_array_equal(a, b)

    losses_two, losses_one = two[0]["history"]["loss"], one[0]["history"]["loss"]
    assert len(losses_two) == EPOCHS and losses_two[-1] < losses_two[0]
    np.testing.assert_allclose(losses_two, losses_one, rtol=1e-3)
    np.testing.assert_allclose(
        two[0]["history"]["val_loss"], one[0]["history"]["val_loss"], rtol=1e-3
    )
    for a, b in zip(two[0]["weights"], one[0]["weights"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)

    # The chief writes the run folder; the other worker writes its own copy.
    chief, other = tmp_path / "two", tmp_path / "two" / "workers" / "worker-1"
    for folder in (chief, other):
        assert len(json.loads((folder / "history.json").read_text())["loss"]) == EPOCHS
        assert (folder / "best.keras").stat().st_size > 0
    norms = json.loads((chief / "gradient_norms.json").read_text())
    assert len(norms["step"]) == EPOCHS * 96 // 16
    assert all(n > 0 for n in norms["grad_norm"])


if __name__ == "__main__":
    _train(Path(sys.argv[1]))
