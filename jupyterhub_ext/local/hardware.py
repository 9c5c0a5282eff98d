"""Which catalog profiles this machine can run: the accelerators it has, and why a profile cannot start here.

A local server is a process on this machine, so a profile that needs an NVIDIA GPU, a MIG slice or an AWS
Neuron device can only start where one exists. Such profiles are still shown on the form (greyed out, with the
reason) so that an operator trying a catalog sees all of it; a request for one is refused with the same reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from typing import Iterable

from ..catalog.model import Profile

NVIDIA_GPU = "nvidia-gpu"  # any NVIDIA GPU the driver exposes
NVIDIA_MIG = "nvidia-mig"  # an NVIDIA GPU in MIG mode, with MIG devices configured
NEURON = "neuron"          # AWS Trainium / Inferentia (the Neuron driver's /dev/neuron*)
ACCELERATORS = (NVIDIA_GPU, NVIDIA_MIG, NEURON)

# hardware kind -> (accelerator it needs, what to tell the user when it is missing)
NEEDS = {
    "gpu": (NVIDIA_GPU, "needs an NVIDIA GPU, and this machine has none (no nvidia-smi, no /dev/nvidia*)"),
    "gpu-timeslice": (NVIDIA_GPU, "needs an NVIDIA GPU, and this machine has none (no nvidia-smi, no /dev/nvidia*)"),
    "mig": (NVIDIA_MIG, "needs an NVIDIA GPU in MIG mode, and this machine has none"),
    "trainium": (NEURON, "needs an AWS Trainium device, and this machine has none (no /dev/neuron*)"),
    "inferentia": (NEURON, "needs an AWS Inferentia device, and this machine has none (no /dev/neuron*)"),
}


def unavailable_reason(profile: Profile, accelerators: Iterable[str]) -> str | None:
    """Why ``profile`` cannot start on a machine with ``accelerators``, or None when it can."""
    need = NEEDS.get(profile.hardware.kind)
    if need is None or need[0] in set(accelerators):
        return None
    return need[1]


def detect_accelerators(dev: str = "/dev", run=subprocess.run) -> list[str]:
    """The accelerators of this machine, from device nodes and ``nvidia-smi`` (never raises)."""
    found = []
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi or glob.glob(os.path.join(dev, "nvidia[0-9]*")):
        found.append(NVIDIA_GPU)
        if nvidia_smi and _mig_devices(nvidia_smi, run):
            found.append(NVIDIA_MIG)
    if glob.glob(os.path.join(dev, "neuron[0-9]*")):
        found.append(NEURON)
    return found


def _mig_devices(nvidia_smi: str, run) -> bool:
    # `nvidia-smi -L` lists one "  MIG 1g.5gb Device 0: (UUID: MIG-...)" line per configured MIG device
    try:
        out = run([nvidia_smi, "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.strip().startswith("MIG ") for line in out.splitlines())
