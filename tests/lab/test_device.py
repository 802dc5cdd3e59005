"""``--device``: auto picks CUDA when present; a device that is not there is one line."""

from __future__ import annotations

import pytest
import torch

from optimlab.lab.device import device_name, resolve_device
from optimlab.lab.errors import UserError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_names_resolve_on_a_cpu_machine(no_gpu):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert device_name(torch.device("cpu"))


def test_auto_takes_the_first_cuda_device_when_there_is_one(one_gpu):
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


@pytest.mark.parametrize(("text", "message"), [
    ("gpu", "Invalid device 'gpu' (expected auto, cpu, cuda, cuda:N or mps)"),
    ("cuda:x", "Invalid device 'cuda:x'"),
    ("cuda", "Device 'cuda' is not available: "),
    ("cuda:1", "Device 'cuda:1' is not available: "),
    ("mps", "Device 'mps' is not available on this machine (use --device cpu)"),
])
def test_unavailable_or_unknown_devices_are_one_line(no_gpu, text, message):
    with pytest.raises(UserError) as info:
        resolve_device(text)
    assert str(info.value).startswith(message)


def test_a_cuda_index_past_the_devices_names_those_there_are(one_gpu):
    with pytest.raises(UserError, match=r"^Device 'cuda:3' is not available \(1 CUDA device\(s\): cuda:0\)$"):
        resolve_device("cuda:3")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_real_gpu_is_found_and_named():
    device = resolve_device("auto")
    assert device.type == "cuda" and device_name(device) == torch.cuda.get_device_name(0)
