"""benchmark.environment: env.* tags for MLflow, the cpuinfo parser and the one-line summary."""

import platform

import pytest
import torch

from benchmark import environment
from benchmark.environment import (environment_tags, gpu_tags, machine_summary,
                                   parse_cpuinfo)

KEYS = {
    "env.cpu_model", "env.cpu_isa", "env.torch_cpu_capability", "env.os", "env.python",
    "env.torch", "env.torchvision", "env.numpy", "env.torch_threads", "env.kdbench_version",
    "env.git_commit", "env.git_dirty", "env.gpu", "env.gpu_count", "env.cuda", "env.cudnn",
    "env.gpu_driver",
}

X86_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 avx512f avx512dq avx512bw \
avx512vl avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8 avx_vnni bf16x

processor\t: 1
model name\t: Some Other Model
flags\t\t: fpu sse
"""

AARCH64_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 2000.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm \
sve sve2 svebf16 i8mm bf16 dgh
CPU implementer\t: 0x41
CPU part\t: 0xd4f

processor\t: 1
Features\t: fp
"""


@pytest.fixture(autouse=True)
def _fresh_cache():
    environment.clear_cache()
    yield
    environment.clear_cache()


def test_all_keys_present_and_strings():
    tags = environment_tags()
    assert set(tags) == KEYS
    assert all(isinstance(value, str) for value in tags.values())
    assert tags["env.python"] == platform.python_version()
    assert tags["env.torch"] == str(torch.__version__)
    assert tags["env.git_dirty"] in {"true", "false", "unknown"}
    assert int(tags["env.gpu_count"]) >= 0 or tags["env.gpu_count"] == "unknown"


def test_torch_threads_follow_set_num_threads():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert environment_tags()["env.torch_threads"] == "1"
        torch.set_num_threads(2)
        assert environment_tags()["env.torch_threads"] == "2"
        assert "2 torch threads" in machine_summary()
    finally:
        torch.set_num_threads(before)


def test_static_tags_are_cached(monkeypatch):
    calls = []
    monkeypatch.setattr(environment, "_read_cpuinfo", lambda: calls.append(1) or X86_CPUINFO)
    first = environment_tags()
    second = environment_tags()
    assert calls == [1]
    assert first["env.cpu_model"] == second["env.cpu_model"] == "Intel(R) Xeon(R) Platinum 8480+"
    second["env.cpu_model"] = "mutated"
    assert environment_tags()["env.cpu_model"] == "Intel(R) Xeon(R) Platinum 8480+"


def test_parse_cpuinfo_x86():
    model, isa = parse_cpuinfo(X86_CPUINFO)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert isa == sorted(["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                          "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                          "amx_int8"])


def test_parse_cpuinfo_aarch64():
    model, isa = parse_cpuinfo(AARCH64_CPUINFO)
    assert model == ""  # no model line; cpu_tags falls back to platform.processor()
    assert isa == ["asimd", "bf16", "i8mm", "sve", "sve2"]


def test_parse_cpuinfo_empty_and_garbage():
    assert parse_cpuinfo("") == ("", [])
    assert parse_cpuinfo("no colon here\nflags: mmx sse\n") == ("", [])


def test_cpu_model_falls_back_when_cpuinfo_is_unreadable(monkeypatch):
    monkeypatch.setattr(environment, "_read_cpuinfo", lambda: "")
    monkeypatch.setattr(platform, "processor", lambda: "")
    tags = environment_tags()
    assert tags["env.cpu_model"] == "unknown"
    assert tags["env.cpu_isa"] == ""


def test_gpu_tags_none_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_tags() == {"env.gpu": "none", "env.gpu_count": "0", "env.cuda": "none",
                          "env.cudnn": "none", "env.gpu_driver": "none"}
    tags = environment_tags()
    assert tags["env.gpu"] == "none" and tags["env.cuda"] == "none"
    assert machine_summary().endswith("no GPU")


def test_failing_probe_gives_unknown(monkeypatch):
    def broken():
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(platform, "platform", broken)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", broken)
    tags = environment_tags()
    assert tags["env.os"] == "unknown"
    assert tags["env.torch_cpu_capability"] == "unknown"


def test_machine_summary_line():
    tags = {"env.cpu_model": "Intel(R) Xeon(R) Platinum 8480+",
            "env.cpu_isa": "amx_bf16,avx,avx2,avx512f,fma", "env.torch_threads": "1",
            "env.torch": "2.5.1", "env.gpu": "NVIDIA H100", "env.gpu_count": "2",
            "env.cuda": "12.4", "env.gpu_driver": "550.54"}
    assert machine_summary(tags) == ("Intel(R) Xeon(R) Platinum 8480+ (avx2, avx512f, amx_bf16), "
                                     "1 torch thread, torch 2.5.1, "
                                     "2 x NVIDIA H100 (CUDA 12.4, driver 550.54)")
    summary = machine_summary()
    assert "\n" not in summary and "torch " in summary


def test_module_main_prints_tags_then_summary(capsys):
    assert environment.main() == 0
    lines = capsys.readouterr().out.splitlines()
    assert {line.split("=", 1)[0] for line in lines[:-1]} == KEYS
    assert lines[-1] == machine_summary()
