"""GPU energy check for a machine WITH an NVIDIA GPU (under 2 minutes).

Runs the example trainer on CUDA under the real runner (``python -m workers.runner``) for
``--seconds`` of training with a large batch, reporting to a loopback collector, while this
script holds two meters of its own on the same GPUs: NVML's total-energy counter and
integrated power samples. Then it stops the runner with SIGTERM (the trainer must checkpoint)
and prints, per GPU, counter energy vs sampled-power energy, mean power, and what the runner
reported. Writes ``$OUT/gpu_energy_check.json`` when ``OUT`` is set.

    python bench/gpu_energy_check.py [--seconds 30] [--batch-size 32768]

Exit status: 0 all checks passed, 1 a check failed, 2 no usable GPU/NVML/CUDA torch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workers.energy import MeterUnavailable, NvmlMeter  # noqa: E402

HARD_LIMIT_S = 110.0
AGREEMENT_REL = 0.20


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def preflight() -> dict[str, Any]:
    """What the machine has; exits 2 with a clear message when something is missing."""
    info: dict[str, Any] = {"python": sys.version.split()[0]}
    try:
        import pynvml
    except ImportError:
        fail(2, "pynvml is not installed: pip install nvidia-ml-py")
    try:
        pynvml.nvmlInit()
        info["driver"] = pynvml.nvmlSystemGetDriverVersion()
        info["nvml_gpus"] = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except pynvml.NVMLError as e:
        fail(2, f"NVML does not start: {e} (is the NVIDIA driver loaded?)")
    try:
        import requests  # noqa: F401 - the runner needs it
        import torch
    except ImportError as e:
        fail(2, f"{e.name} is not installed (pip install -e . from the repository root)")
    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    if not torch.cuda.is_available():
        fail(2, f"torch {torch.__version__} sees no CUDA device (a CPU-only build?)")
    info["cuda_device"] = torch.cuda.get_device_name(0)
    info["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    return info


def fail(code: int, message: str) -> None:
    log(f"ERROR: {message}")
    write_summary({"ok": False, "error": message})
    sys.exit(code)


class Collector(ThreadingHTTPServer):
    """A loopback stand-in for ``POST /v1/jobs/{id}/energy``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CollectorHandler)
        self.reports: dict[tuple[str, str], dict[str, Any]] = {}
        self.posts = 0
        self.lock = threading.Lock()


class _CollectorHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.posts += 1
            before = len(self.server.reports)
            for r in body["reports"]:
                self.server.reports.setdefault((r["device"], r["interval_start"]), r)
            accepted = len(self.server.reports) - before
        payload = json.dumps(
            {"accepted": accepted, "duplicates": len(body["reports"]) - accepted}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_runner(
    collector: Collector, checkpoint: Path, args: argparse.Namespace, gpus: int
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENLIGHT_")}
    env.update(
        {
            "GREENLIGHT_API_URL": f"http://127.0.0.1:{collector.server_address[1]}",
            "GREENLIGHT_JOB_ID": "gpu-energy-check",
            "GREENLIGHT_TOKEN": "bench",
            "GREENLIGHT_ATTEMPT": "1",
            "GREENLIGHT_GPUS": str(gpus),
            "GREENLIGHT_CPUS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    argv = [
        sys.executable,
        "-m",
        "workers.runner",
        "--interval-s",
        "5",
        "--stop-grace-s",
        "30",
        "--",
        sys.executable,
        "-m",
        "workers.examples.train_mlp",
        "--device",
        args.trainer_device,
        "--steps",
        "1000000000",
        "--batch-size",
        str(args.batch_size),
        "--log-every",
        "500",
        "--checkpoint",
        str(checkpoint),
        "--checkpoint-every",
        "1000000000",
    ]
    return subprocess.Popen(
        argv, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


class OutputTail:
    """Reads the runner's merged output in a thread; remembers trainer and runner lines."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.training = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("training on"):  # printed once the model sits on the device
                self.training.set()
            if line.startswith(("step=", "training", "checkpoint", "stopped", "resumed")) or (
                '"level": "error"' in line or '"level": "warning"' in line
            ):
                log(f"  | {line.rstrip()}")

    def join(self) -> None:
        self._thread.join(timeout=10)


@dataclass
class Measurement:
    """Cumulative joules per device from both meters at three moments, and the runner's end."""

    models: dict[str, str]
    methods: dict[str, str]
    at_train_start: tuple[dict[str, float], dict[str, float]] = ({}, {})
    at_stop: tuple[dict[str, float], dict[str, float]] = ({}, {})
    at_end: tuple[dict[str, float], dict[str, float]] = ({}, {})
    train_s: float = 0.0
    window_s: float = 0.0
    exit_code: int | None = None
    lines: list[str] = field(default_factory=list)


def run_training(
    args: argparse.Namespace, collector: Collector, checkpoint: Path, started_s: float
) -> Measurement:
    counter = NvmlMeter(use_counter=True)
    sampled = NvmlMeter(use_counter=False, sample_interval_s=0.05)
    m = Measurement(
        models=counter.models, methods={d: str(counter.method(d)) for d in counter.devices()}
    )
    log(f"GPUs metered: {m.models}; counter methods: {m.methods}")
    t0 = time.monotonic()
    runner = start_runner(collector, checkpoint, args, len(counter.devices()))
    tail = OutputTail(runner)
    budget_s = HARD_LIMIT_S - (time.monotonic() - started_s) - 20
    if not tail.training.wait(timeout=max(10.0, budget_s - args.seconds)):
        log("ERROR: the trainer did not start training in time; stopping")
    m.at_train_start = (counter.read(), sampled.read())
    train_started = time.monotonic()
    while time.monotonic() - train_started < args.seconds and runner.poll() is None:
        time.sleep(0.2)
    m.at_stop = (counter.read(), sampled.read())
    m.train_s = time.monotonic() - train_started
    if runner.poll() is not None:
        log(f"ERROR: the runner exited early with {runner.returncode}")
    else:
        log(f"stopping the runner with SIGTERM after {m.train_s:.1f} s of training")
        runner.send_signal(signal.SIGTERM)
    try:
        m.exit_code = runner.wait(timeout=45)
    except subprocess.TimeoutExpired:
        log("ERROR: the runner did not exit 45 s after SIGTERM; killing it")
        runner.kill()
        m.exit_code = runner.wait()
    m.window_s = time.monotonic() - t0
    m.at_end = (counter.read(), sampled.read())
    counter.close()
    sampled.close()
    tail.join()
    m.lines = tail.lines
    return m


def measure(args: argparse.Namespace, info: dict[str, Any], started_s: float) -> dict[str, Any]:
    collector = Collector()
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    checkpoint = Path(tempfile.mkdtemp(prefix="gl-gpu-check-")) / "ckpt.pt"
    try:
        m = run_training(args, collector, checkpoint, started_s)
    finally:
        collector.shutdown()
    return summarise(info, collector, m, checkpoint)


def device_row(m: Measurement, device: str, reported: dict[str, dict[str, Any]]) -> dict[str, Any]:
    counted_j, sampled_j = m.at_end[0][device], m.at_end[1][device]
    train_counted_j = m.at_stop[0][device] - m.at_train_start[0][device]
    train_sampled_j = m.at_stop[1][device] - m.at_train_start[1][device]
    return {
        "model": m.models.get(device),
        "method": m.methods[device],
        "counter_j": round(counted_j, 2),
        "sampled_power_j": round(sampled_j, 2),
        "diff_pct": round(100 * (sampled_j - counted_j) / counted_j, 2) if counted_j else None,
        "mean_power_counter_w": round(counted_j / m.window_s, 2),
        "mean_power_sampled_w": round(sampled_j / m.window_s, 2),
        "train_counter_j": round(train_counted_j, 2),
        "train_mean_power_counter_w": round(train_counted_j / max(m.train_s, 1e-9), 2),
        "train_mean_power_sampled_w": round(train_sampled_j / max(m.train_s, 1e-9), 2),
        "runner_reported_j": round(reported.get(device, {}).get("energy_j", 0.0), 2),
        "runner_methods": sorted(reported.get(device, {}).get("methods", ())),
    }


def summarise(
    info: dict[str, Any], collector: Collector, m: Measurement, checkpoint: Path
) -> dict[str, Any]:
    reported: dict[str, dict[str, Any]] = {}
    for r in collector.reports.values():
        entry = reported.setdefault(
            r["device"], {"energy_j": 0.0, "methods": set(), "intervals": 0}
        )
        entry["energy_j"] += r["energy_j"]
        entry["methods"].add(r["method"])
        entry["intervals"] += 1
    checkpoint_step = None
    if checkpoint.exists():
        import torch

        checkpoint_step = int(torch.load(checkpoint, weights_only=True)["step"])
    steps = [line for line in m.lines if line.startswith("step=")]
    return {
        "machine": info,
        "window_s": round(m.window_s, 2),
        "train_s": round(m.train_s, 2),
        "devices": {d: device_row(m, d, reported) for d in m.at_end[0]},
        "runner": {
            "exit_code": m.exit_code,
            "posts": collector.posts,
            "checkpoint_step": checkpoint_step,
            "last_step_line": steps[-1] if steps else None,
            "reported": {
                d: {**v, "methods": sorted(v["methods"]), "energy_j": round(v["energy_j"], 2)}
                for d, v in reported.items()
            },
        },
    }


def check(summary: dict[str, Any]) -> list[str]:
    """Human-readable failures; empty when all is well."""
    problems = []
    runner = summary["runner"]
    if runner["exit_code"] != 128 + signal.SIGTERM:
        problems.append(f"runner exit {runner['exit_code']}, expected 143 (SIGTERM forwarded)")
    if not runner["checkpoint_step"]:
        problems.append("the trainer saved no checkpoint on SIGTERM")
    for device, d in summary["devices"].items():
        if d["counter_j"] <= 0 or d["sampled_power_j"] <= 0:
            problems.append(f"{device}: no energy measured")
        elif d["diff_pct"] is not None and abs(d["diff_pct"]) > 100 * AGREEMENT_REL:
            problems.append(f"{device}: counter and sampled power differ by {d['diff_pct']}%")
        if not d["runner_methods"] or not set(d["runner_methods"]) <= {
            "nvml-counter",
            "nvml-power",
        }:
            problems.append(f"{device}: runner reported {d['runner_methods']}, not NVML")
        elif not 0 < d["runner_reported_j"] <= d["counter_j"] * 1.05:
            problems.append(
                f"{device}: runner reported {d['runner_reported_j']} J vs "
                f"{d['counter_j']} J over the wider window"
            )
    return problems


def print_table(summary: dict[str, Any]) -> None:
    runner = summary["runner"]
    print(
        f"\nwindow {summary['window_s']} s (training {summary['train_s']} s); "
        f"runner exit {runner['exit_code']}; checkpoint step {runner['checkpoint_step']}; "
        f"last: {runner['last_step_line']}"
    )
    header = (
        f"{'device':<8} {'method':<13} {'counter J':>10} {'sampled J':>10} {'diff %':>7} "
        f"{'W ctr':>7} {'W smp':>7} {'train W ctr':>11} {'train W smp':>11} {'runner J':>9}"
    )
    print(header)
    print("-" * len(header))
    for device, d in summary["devices"].items():
        print(
            f"{device:<8} {d['method']:<13} {d['counter_j']:>10.1f} "
            f"{d['sampled_power_j']:>10.1f} {d['diff_pct'] or 0:>7.2f} "
            f"{d['mean_power_counter_w']:>7.1f} {d['mean_power_sampled_w']:>7.1f} "
            f"{d['train_mean_power_counter_w']:>11.1f} {d['train_mean_power_sampled_w']:>11.1f} "
            f"{d['runner_reported_j']:>9.1f}  {d['model']}"
        )
    for device, r in runner["reported"].items():
        if not device.startswith("gpu:"):
            print(f"runner also reported {device}: {r['energy_j']} J ({', '.join(r['methods'])})")


def write_summary(summary: dict[str, Any]) -> None:
    out = os.environ.get("OUT")
    if out:
        path = Path(out) / "gpu_energy_check.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2, default=str))
        log(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch-size", type=int, default=32768)
    parser.add_argument(
        "--trainer-device",
        choices=["cuda", "cpu"],
        default="cuda",
        help="cpu only to dry-run the plumbing; the energy checks then fail by design",
    )
    args = parser.parse_args()
    started_s = time.monotonic()
    info = preflight()
    log(f"machine: {info}")
    try:
        summary = measure(args, info, started_s)
    except MeterUnavailable as e:
        fail(2, f"NVML meter unavailable: {e}")
        return 2
    except Exception as e:  # a bench script: report anything clearly, then fail
        traceback.print_exc()
        fail(1, f"{type(e).__name__}: {e}")
        return 1
    problems = check(summary)
    summary["ok"] = not problems
    summary["problems"] = problems
    print_table(summary)
    for problem in problems:
        log(f"CHECK FAILED: {problem}")
    log("all checks passed" if not problems else f"{len(problems)} check(s) failed")
    write_summary(summary)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
