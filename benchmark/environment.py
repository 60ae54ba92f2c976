"""The machine and software a run is produced on, as flat string tags for MLflow.

:func:`environment_tags` returns ``env.*`` tags (CPU model and vector ISA, OS, Python, torch,
torchvision and numpy versions, torch's thread count, kdbench's version and git state, and the
GPU, CUDA, cuDNN and driver when CUDA is available); :func:`machine_summary` condenses them into
one human line for results READMEs and closing notes. Probing never fails: a probe that raises
gives ``'unknown'``. Everything but ``env.torch_threads`` is computed once per process.

``python -m benchmark.environment`` prints the tags (``key=value``, one per line) and the summary.
"""

from __future__ import annotations

import functools
import importlib
import platform
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

UNKNOWN = "unknown"
NONE = "none"

# Vector-ISA flags that matter for numerics and speed, in the order they are introduced.
X86_ISA = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
           "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
ARM_ISA = ("asimd", "sve", "sve2", "bf16", "i8mm")
# The few of them that machine_summary names (the rest are implied or minor for kdbench).
HEADLINE_ISA = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "asimd", "sve", "sve2", "bf16")

# Keys of the model line and the ISA line in /proc/cpuinfo, and the flags each ISA line may hold.
_MODEL_KEYS = ("model name", "hardware", "processor")
_ISA_KEYS = {"flags": X86_ISA, "features": ARM_ISA}


def _safe(probe: Callable[[], object]) -> str:
    """``str(probe())``, or ``'unknown'`` if the probe raises anything."""
    try:
        return str(probe())
    except Exception:  # noqa: BLE001 - a probe must never fail a run
        return UNKNOWN


def parse_cpuinfo(text: str) -> tuple[str, list[str]]:
    """The CPU model and the known vector-ISA flags (sorted) in a ``/proc/cpuinfo`` text.

    Reads the first ``model name`` line (x86; ``Hardware`` or a non-numeric ``Processor`` line on
    older ARM kernels) and the first ``flags`` (x86) or ``Features`` (aarch64) line. The model
    is ``''`` when no line names it.
    """
    model, isa = "", None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if not sep:
            continue
        if not model and key in _MODEL_KEYS and value and not value.isdigit():
            model = value
        if isa is None and key in _ISA_KEYS:
            isa = sorted(set(value.split()) & set(_ISA_KEYS[key]))
    return model, isa or []


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_tags() -> dict[str, str]:
    """``env.cpu_model``, ``env.cpu_isa`` and ``env.torch_cpu_capability``."""
    model, isa = parse_cpuinfo(_read_cpuinfo())
    return {
        "env.cpu_model": model or _safe(platform.processor) or UNKNOWN,
        "env.cpu_isa": ",".join(isa),
        "env.torch_cpu_capability": _safe(_torch_cpu_capability),
    }


def _torch_cpu_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


def module_version(module: str) -> str:
    """``module.__version__``, or ``'missing'`` if the module cannot be imported."""
    try:
        return str(importlib.import_module(module).__version__)
    except ImportError:
        return "missing"
    except Exception:  # noqa: BLE001 - a broken install must not fail a run
        return UNKNOWN


def _kdbench_version() -> str:
    from importlib.metadata import version

    return version("kdbench")


def _git_commit() -> str:
    from benchmark.tracking import git_commit

    return git_commit()


def git_dirty() -> str:
    """``'true'`` if kdbench's checkout has uncommitted changes, ``'false'``, or ``'unknown'``."""
    try:
        out = subprocess.run(["git", "status", "--porcelain"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    if out.returncode != 0:
        return UNKNOWN
    return "true" if out.stdout.strip() else "false"


def software_tags() -> dict[str, str]:
    """OS, Python, library versions and kdbench's version and git state."""
    return {
        "env.os": _safe(platform.platform),
        "env.python": _safe(platform.python_version),
        "env.torch": module_version("torch"),
        "env.torchvision": module_version("torchvision"),
        "env.numpy": module_version("numpy"),
        "env.kdbench_version": _safe(_kdbench_version),
        "env.git_commit": _safe(_git_commit),
        "env.git_dirty": _safe(git_dirty),
    }


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def gpu_tags() -> dict[str, str]:
    """``env.gpu``, ``env.gpu_count``, ``env.cuda``, ``env.cudnn``, ``env.gpu_driver``.

    All ``'none'`` (count ``'0'``) when CUDA is not available; ``'unknown'`` if that cannot be
    told (torch missing or broken).
    """
    available = _safe(_cuda_available)
    if available != "True":
        value = NONE if available == "False" else UNKNOWN
        count = "0" if available == "False" else UNKNOWN
        return {"env.gpu": value, "env.gpu_count": count, "env.cuda": value,
                "env.cudnn": value, "env.gpu_driver": value}
    import torch

    return {
        "env.gpu": _safe(lambda: torch.cuda.get_device_name(0)),
        "env.gpu_count": _safe(torch.cuda.device_count),
        "env.cuda": _safe(lambda: torch.version.cuda or NONE),
        "env.cudnn": _safe(_cudnn_version),
        "env.gpu_driver": _safe(gpu_driver),
    }


def _cudnn_version() -> str:
    import torch

    if not torch.backends.cudnn.is_available():
        return NONE
    return str(torch.backends.cudnn.version())


def gpu_driver() -> str:
    """The NVIDIA driver version from ``nvidia-smi``, ``'none'`` without it, else ``'unknown'``."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return NONE
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else UNKNOWN


@functools.lru_cache(maxsize=1)
def _static_tags() -> dict[str, str]:
    return {**cpu_tags(), **software_tags(), **gpu_tags()}


def clear_cache() -> None:
    """Forget the cached static tags (tests, or after the environment changed)."""
    _static_tags.cache_clear()


def torch_threads() -> str:
    """torch's current intra-op thread count (not cached: it can change within a process)."""
    import torch

    return str(torch.get_num_threads())


def environment_tags() -> dict[str, str]:
    """Every ``env.*`` tag, all values strings; only ``env.torch_threads`` is re-read each call."""
    tags = dict(_static_tags())
    tags["env.torch_threads"] = _safe(torch_threads)
    return tags


def machine_summary(tags: dict[str, str] | None = None) -> str:
    """One human line, e.g. ``Intel(R) Xeon(R) ... (avx2, avx512f), 2 torch threads, torch 2.5.1,
    no GPU``; ``tags`` defaults to :func:`environment_tags`."""
    tags = environment_tags() if tags is None else tags
    return ", ".join([_cpu_phrase(tags), _threads_phrase(tags.get("env.torch_threads", UNKNOWN)),
                      f"torch {tags.get('env.torch', UNKNOWN)}", _gpu_phrase(tags)])


def _cpu_phrase(tags: dict[str, str]) -> str:
    isa = set(tags.get("env.cpu_isa", "").split(","))
    headline = [flag for flag in HEADLINE_ISA if flag in isa]
    model = tags.get("env.cpu_model", UNKNOWN)
    return f"{model} ({', '.join(headline)})" if headline else model


def _threads_phrase(threads: str) -> str:
    return f"{threads} torch thread" + ("" if threads == "1" else "s")


def _gpu_phrase(tags: dict[str, str]) -> str:
    gpu = tags.get("env.gpu", UNKNOWN)
    if gpu == NONE:
        return "no GPU"
    if gpu == UNKNOWN:
        return "GPU unknown"
    count = tags.get("env.gpu_count", "1")
    prefix = f"{count} x " if count not in ("1", UNKNOWN) else ""
    return (f"{prefix}{gpu} (CUDA {tags.get('env.cuda', UNKNOWN)}, "
            f"driver {tags.get('env.gpu_driver', UNKNOWN)})")


def main() -> int:
    tags = environment_tags()
    for key in sorted(tags):
        print(f"{key}={tags[key]}")
    print(machine_summary(tags))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
