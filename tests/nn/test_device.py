"""Device and precision selection: defaults, errors, autocast, channels-last, the log line."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from mskseg.nn.device import (  # noqa: E402
    autocast,
    describe,
    resolve_device,
    resolve_precision,
    set_threads,
    use_channels_last,
)

CPU = torch.device("cpu")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_resolve_device_auto_and_cpu():
    assert resolve_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(" CPU ") == CPU


@pytest.mark.parametrize("spec", ["tpu", "gpu", "", "cuda0"])
def test_resolve_device_unknown(spec):
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device(spec)


@no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
def test_resolve_device_cuda_without_cuda(spec):
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device(spec)


@pytest.mark.gpu
@needs_cuda
def test_resolve_device_cuda_index_out_of_range():
    assert resolve_device("cuda").type == "cuda"
    with pytest.raises(ValueError, match="only"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_resolve_precision_on_cpu():
    assert resolve_precision(CPU) == "fp32"
    assert resolve_precision(CPU, "FP32") == "fp32"
    assert resolve_precision(CPU, "bf16") == "bf16"
    with pytest.raises(ValueError, match=r"fp16.*CUDA"):
        resolve_precision(CPU, "fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision(CPU, "fp64")


@pytest.mark.gpu
@needs_cuda
def test_resolve_precision_on_cuda():
    cuda = torch.device("cuda")
    assert resolve_precision(cuda) in ("bf16", "fp16")
    assert resolve_precision(cuda, "fp16") == "fp16"


def test_autocast_fp32_is_a_no_op():
    a = torch.randn(4, 4)
    with autocast(CPU, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
        assert (a @ a).dtype == torch.float32


def test_autocast_bf16_on_cpu():
    a = torch.randn(4, 4)
    with autocast(CPU, "bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert (a @ a).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")


def test_channels_last_setting():
    assert use_channels_last(CPU) is False
    assert use_channels_last(torch.device("cuda")) is True  # a decision only; no CUDA needed
    assert use_channels_last(CPU, True) is True and use_channels_last(torch.device("cuda"), False) is False


def test_set_threads():
    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        set_threads(None)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_describe_cpu():
    text = describe(CPU)
    assert text.startswith("cpu (") and "threads" in text


@pytest.mark.gpu
@needs_cuda
def test_describe_cuda():
    assert describe(torch.device("cuda")).startswith("cuda:")
