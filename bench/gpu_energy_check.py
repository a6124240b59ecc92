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
        import torch
    except ImportError:
        fail(2, "torch is not installed")
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
    collector: Collector, checkpoint: Path, batch_size: int, gpus: int
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
        "cuda",
        "--steps",
        "1000000000",
        "--batch-size",
        str(batch_size),
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
        self.first_step = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("step="):
                self.first_step.set()
            if line.startswith(("step=", "training", "checkpoint", "stopped", "resumed")) or (
                '"level": "error"' in line or '"level": "warning"' in line
            ):
                log(f"  | {line.rstrip()}")

    def join(self) -> None:
        self._thread.join(timeout=10)


def measure(args: argparse.Namespace, info: dict[str, Any], started_s: float) -> dict[str, Any]:
    collector = Collector()
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    counter = NvmlMeter(use_counter=True)
    sampled = NvmlMeter(use_counter=False, sample_interval_s=0.05)
    methods = {d: str(counter.method(d)) for d in counter.devices()}
    log(f"GPUs metered: {counter.models}; counter methods: {methods}")
    checkpoint = Path(tempfile.mkdtemp(prefix="gl-gpu-check-")) / "ckpt.pt"
    t0 = time.monotonic()
    runner = start_runner(collector, checkpoint, args.batch_size, len(counter.devices()))
    tail = OutputTail(runner)
    budget_s = HARD_LIMIT_S - (time.monotonic() - started_s) - 20
    if not tail.first_step.wait(timeout=max(10.0, budget_s - args.seconds)):
        log("ERROR: the trainer printed no step in time; stopping")
    train_started = time.monotonic()
    while time.monotonic() - train_started < args.seconds and runner.poll() is None:
        time.sleep(0.2)
    if runner.poll() is not None:
        log(f"ERROR: the runner exited early with {runner.returncode}")
    else:
        log(
            f"stopping the runner with SIGTERM after {time.monotonic() - train_started:.1f} s "
            "of training"
        )
        runner.send_signal(signal.SIGTERM)
    try:
        exit_code = runner.wait(timeout=45)
    except subprocess.TimeoutExpired:
        runner.kill()
        exit_code = runner.wait()
    elapsed_s = time.monotonic() - t0
    counted_j, sampled_j = counter.read(), sampled.read()
    counter.close()
    sampled.close()
    tail.join()
    collector.shutdown()
    return summarise(
        info,
        collector,
        counter.models,
        methods,
        counted_j,
        sampled_j,
        elapsed_s,
        exit_code,
        checkpoint,
        tail.lines,
    )


def summarise(
    info: dict[str, Any],
    collector: Collector,
    models: dict[str, str],
    methods: dict[str, str],
    counted_j: dict[str, float],
    sampled_j: dict[str, float],
    elapsed_s: float,
    exit_code: int,
    checkpoint: Path,
    lines: list[str],
) -> dict[str, Any]:
    reported: dict[str, dict[str, Any]] = {}
    for r in collector.reports.values():
        entry = reported.setdefault(
            r["device"], {"energy_j": 0.0, "methods": set(), "intervals": 0}
        )
        entry["energy_j"] += r["energy_j"]
        entry["methods"].add(r["method"])
        entry["intervals"] += 1
    devices = {}
    for device, energy_j in counted_j.items():
        other_j = sampled_j.get(device, 0.0)
        devices[device] = {
            "model": models.get(device),
            "method": methods[device],
            "counter_j": round(energy_j, 2),
            "sampled_power_j": round(other_j, 2),
            "diff_pct": round(100 * (other_j - energy_j) / energy_j, 2) if energy_j else None,
            "mean_power_counter_w": round(energy_j / elapsed_s, 2),
            "mean_power_sampled_w": round(other_j / elapsed_s, 2),
            "runner_reported_j": round(reported.get(device, {}).get("energy_j", 0.0), 2),
            "runner_methods": sorted(reported.get(device, {}).get("methods", ())),
        }
    checkpoint_step = None
    if checkpoint.exists():
        import torch

        checkpoint_step = int(torch.load(checkpoint, weights_only=True)["step"])
    steps = [line for line in lines if line.startswith("step=")]
    return {
        "machine": info,
        "window_s": round(elapsed_s, 2),
        "devices": devices,
        "runner": {
            "exit_code": exit_code,
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
    print(
        f"\nwindow {summary['window_s']} s; runner exit {summary['runner']['exit_code']}; "
        f"checkpoint step {summary['runner']['checkpoint_step']}; "
        f"{summary['runner']['last_step_line']}"
    )
    header = (
        f"{'device':<8} {'method':<13} {'counter J':>11} {'sampled J':>11} {'diff %':>7} "
        f"{'mean W (ctr)':>12} {'mean W (smp)':>12} {'runner J':>10}  model"
    )
    print(header)
    print("-" * len(header))
    for device, d in summary["devices"].items():
        print(
            f"{device:<8} {d['method']:<13} {d['counter_j']:>11.1f} "
            f"{d['sampled_power_j']:>11.1f} {d['diff_pct'] or 0:>7.2f} "
            f"{d['mean_power_counter_w']:>12.1f} {d['mean_power_sampled_w']:>12.1f} "
            f"{d['runner_reported_j']:>10.1f}  {d['model']}"
        )
    for device, r in summary["runner"]["reported"].items():
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
