"""What this machine can run: accelerators from device nodes and nvidia-smi, and the reasons shown."""

from __future__ import annotations

import os
import subprocess

import pytest

from jupyterhub_ext.catalog import parse_catalog
from jupyterhub_ext.local import hardware

PROFILES = {p.slug: p for p in parse_catalog([
    {"slug": "cpu", "display_name": "CPU", "hardware": {"kind": "cpu"}},
    {"slug": "gpu", "display_name": "GPU", "hardware": {"kind": "gpu", "gpus": 1}},
    {"slug": "ts", "display_name": "TS", "hardware": {"kind": "gpu-timeslice"}},
    {"slug": "mig", "display_name": "MIG", "hardware": {"kind": "mig", "mig_profile": "1g.5gb"}},
    {"slug": "trn", "display_name": "Trainium", "hardware": {"kind": "trainium", "devices": 1}},
    {"slug": "inf", "display_name": "Inferentia", "hardware": {"kind": "inferentia", "devices": 1}},
]).profiles}


@pytest.mark.parametrize("accelerators, runnable", [
    ([], {"cpu"}),
    (["nvidia-gpu"], {"cpu", "gpu", "ts"}),
    (["nvidia-gpu", "nvidia-mig"], {"cpu", "gpu", "ts", "mig"}),
    (["neuron"], {"cpu", "trn", "inf"}),
])
def test_what_runs_on_which_machine(accelerators, runnable):
    reasons = {slug: hardware.unavailable_reason(p, accelerators) for slug, p in PROFILES.items()}
    assert {slug for slug, why in reasons.items() if why is None} == runnable
    for slug, why in reasons.items():
        assert why is None or why.startswith("needs ")


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A fake /dev and a PATH without nvidia-smi (unless a test adds one)."""
    dev, bin_dir = tmp_path / "dev", tmp_path / "bin"
    dev.mkdir()
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return dev, bin_dir


def fake_nvidia_smi(bin_dir, listing: str):
    script = bin_dir / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{listing}'\n")  # a builtin: PATH has nothing else
    os.chmod(script, 0o755)


def test_nothing_found_on_a_plain_machine(machine):
    dev, _ = machine
    (dev / "null").touch()
    (dev / "nvidiactl").touch()  # the control node alone is not a GPU
    assert hardware.detect_accelerators(str(dev)) == []


def test_device_nodes(machine):
    dev, _ = machine
    (dev / "nvidia0").touch()
    (dev / "neuron0").touch()
    assert hardware.detect_accelerators(str(dev)) == ["nvidia-gpu", "neuron"]


def test_nvidia_smi_and_mig_devices(machine):
    dev, bin_dir = machine
    fake_nvidia_smi(bin_dir, "GPU 0: NVIDIA A10G (UUID: GPU-1)\n")
    assert hardware.detect_accelerators(str(dev)) == ["nvidia-gpu"]
    fake_nvidia_smi(bin_dir, "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1)\n"
                             "  MIG 1g.5gb      Device  0: (UUID: MIG-2)\n")
    assert hardware.detect_accelerators(str(dev)) == ["nvidia-gpu", "nvidia-mig"]


def test_a_hanging_or_broken_nvidia_smi_means_no_mig(machine):
    dev, bin_dir = machine
    fake_nvidia_smi(bin_dir, "")

    def hangs(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], 10)

    assert hardware.detect_accelerators(str(dev), run=hangs) == ["nvidia-gpu"]
