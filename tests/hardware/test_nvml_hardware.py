"""Real NVML readings during a short CUDA training run; skipped without an NVIDIA GPU."""

from __future__ import annotations

import pytest

from workers.energy import MeterMethod, MeterUnavailable, NvmlMeter, PowerSpec, build_meter

pytestmark = pytest.mark.gpu


@pytest.fixture
def cuda() -> None:
    try:
        NvmlMeter(sample_interval_s=None).close()
    except MeterUnavailable as e:
        pytest.skip(f"NVML unavailable: {e}")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device (CPU build?)")


def test_counter_and_power_sampling_both_see_a_training_run(cuda: None) -> None:
    from workers.examples.train_mlp import TrainConfig, train

    with NvmlMeter() as counter, NvmlMeter(use_counter=False, sample_interval_s=0.05) as power:
        train(TrainConfig(steps=400, batch_size=8192, device="cuda", log_every=100))
        counted_j = counter.read()
        sampled_j = power.read()
        methods = {counter.method(d) for d in counter.devices()}
    assert methods <= {MeterMethod.NVML_COUNTER, MeterMethod.NVML_POWER}
    for device in counted_j:
        assert counted_j[device] > 0, device
        assert sampled_j[device] > 0, device
        # Two independent readings of one GPU agree roughly (power is a ~1 s average).
        assert sampled_j[device] == pytest.approx(counted_j[device], rel=0.5), device


def test_factory_picks_nvml_on_a_gpu_node(cuda: None) -> None:
    with build_meter(PowerSpec(gpus=1)) as meter:
        gpu_methods = {m for d, m in meter.methods().items() if d.startswith("gpu:")}
    assert gpu_methods
    assert gpu_methods <= {MeterMethod.NVML_COUNTER, MeterMethod.NVML_POWER}
