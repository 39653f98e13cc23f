"""`forge doctor` on torch builds that do not fit the machine: a CUDA build where no NVIDIA GPU
is (gigabytes of libraries for nothing, what pipx pulls by default) warns with the CPU build's
install line; a CPU build beside an NVIDIA GPU fails with the CUDA one. The GPU is what
`nvidia-smi` on PATH says, as on a real machine: an empty PATH here, a script printing what the
real tool prints for the other case."""

from __future__ import annotations

from pathlib import Path

import pytest

from forge_cli.doctor import _driver

CUDA_BUILD = {"version": "2.13.0", "cuda_build": "12.8", "cuda": False, "mps": False}
CPU_BUILD = {"version": "2.13.0", "cuda_build": None, "cuda": False, "mps": False}


def test_a_cuda_build_without_a_gpu_warns_with_the_cpu_builds_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    check = _driver(CUDA_BUILD)
    assert check.state == "warn" and "CUDA 12.8 build" in check.says
    assert "download.pytorch.org/whl/cpu" in check.fix
    assert _driver(CPU_BUILD).state == "ok"


def test_a_cpu_build_beside_a_gpu_fails_with_the_cuda_builds_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 570.86.15, 81559 MiB'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    check = _driver(CPU_BUILD)
    assert check.state == "FAIL" and "torch cannot use it" in check.says and check.fix
