"""The example workloads: the trainer (in-process and under the runner, suspended by SIGTERM
and resumed from its checkpoint) and the TorchScript model server under the runner."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import torch

from workers.examples.model import INPUT_DIM, build_mlp
from workers.examples.train_mlp import TrainConfig, train

REPO = Path(__file__).resolve().parents[2]


def local_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENLIGHT_")}
    env["GREENLIGHT_METER"] = "estimate"
    return env


def under_runner(*command: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "workers.runner", "--", *command]
    return subprocess.Popen(
        argv, cwd=REPO, env=local_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def trainer(*flags: str) -> list[str]:
    return [sys.executable, "-m", "workers.examples.train_mlp", "--device", "cpu", *flags]


def test_training_lowers_the_loss_and_resuming_matches_an_uninterrupted_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    straight = tmp_path / "straight.pt"
    split = tmp_path / "split.pt"
    base = {"batch_size": 32, "device": "cpu", "log_every": 1}
    step, _ = train(TrainConfig(steps=8, checkpoint=straight, **base))  # type: ignore[arg-type]
    assert step == 8
    train(TrainConfig(steps=4, checkpoint=split, **base))  # type: ignore[arg-type]
    step, _ = train(TrainConfig(steps=8, checkpoint=split, **base))  # type: ignore[arg-type]
    assert step == 8
    losses = [
        float(m)
        for m in re.findall(
            r"^step=\d+ loss=([\d.]+)$", capsys.readouterr().out, flags=re.MULTILINE
        )
    ]
    assert losses[7] < losses[0]
    assert losses[8:12] == losses[:4], "the same batches after a restart"
    assert losses[12:] == losses[4:8], "the same batches after resuming"
    a = torch.load(straight, weights_only=True)
    b = torch.load(split, weights_only=True)
    assert a["step"] == b["step"] == 8
    for name, tensor in a["model"].items():
        assert torch.allclose(tensor, b["model"][name], atol=1e-6), name


def test_sigterm_to_the_runner_checkpoints_the_trainer_and_a_rerun_resumes(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint = tmp_path / "ckpt.pt"
    flags = [
        "--checkpoint",
        str(checkpoint),
        "--batch-size",
        "16",
        "--log-every",
        "1",
        "--checkpoint-every",
        "100000",
    ]
    process = under_runner(*trainer("--steps", "100000", *flags))
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("step=3 "):
            process.send_signal(signal.SIGTERM)  # to the runner only; it must forward
            break
    rest, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    saved = re.search(r"checkpoint saved step=(\d+) reason=signal", rest)
    assert saved, rest
    stopped_at = int(saved.group(1))
    assert stopped_at >= 3
    assert f"stopped by signal {signal.SIGTERM.value} at step={stopped_at}" in rest
    assert torch.load(checkpoint, weights_only=True)["step"] == stopped_at

    # The next attempt (in-process here, to spare a second torch start-up) resumes there.
    step, _ = train(
        TrainConfig(
            steps=stopped_at + 2, batch_size=16, device="cpu", checkpoint=checkpoint, log_every=1
        )
    )
    out = capsys.readouterr().out
    assert step == stopped_at + 2
    assert f"resumed from step={stopped_at}" in out
    assert re.search(rf"^step={stopped_at + 1} loss=", out, flags=re.MULTILINE)
    assert not re.search(r"^step=1 loss=", out, flags=re.MULTILINE), "must not restart"


def test_served_model_answers_predictions_and_stops_on_sigterm(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.pt"
    model = build_mlp(seed=5)
    torch.save({"model": model.state_dict()}, checkpoint)
    process = under_runner(
        sys.executable,
        "-m",
        "workers.examples.serve_model",
        "--port",
        "0",
        "--device",
        "cpu",
        "--checkpoint",
        str(checkpoint),
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.match(r"serving on (http://127\.0\.0\.1:\d+) ", first)
        assert match, first
        url = match.group(1)
        assert requests.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}
        rows = torch.linspace(-1, 1, 2 * INPUT_DIM).reshape(2, INPUT_DIM)
        answer = requests.post(f"{url}/predict", json={"inputs": rows.tolist()}, timeout=10)
        assert answer.status_code == 200
        with torch.no_grad():
            expected = model(rows).reshape(-1).tolist()
        assert answer.json()["outputs"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
        bad = requests.post(f"{url}/predict", json={"inputs": [[1.0, 2.0]]}, timeout=10)
        assert bad.status_code == 400
        assert "1000" in bad.json()["error"]
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped" in out
