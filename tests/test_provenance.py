"""The hardware record: ISA flags and the machine slug from a stubbed /proc/cpuinfo (VNNI, no VNNI, ARM), and the
record as this machine gives it."""

from __future__ import annotations

import re

import pytest

from onnx_search import provenance as pv

# first processor blocks as the kernel writes them (flags trimmed to a realistic subset)
INTEL_VNNI = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512dq avx512bw avx512_vnni avx512_bf16

processor\t: 1
model name\t: something else
flags\t\t: fpu
"""
AMD_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12 64-Core Processor
flags\t\t: fpu sse sse2 avx avx2 fma
"""
ALDER_LAKE = """processor : 0
model name : 12th Gen Intel(R) Core(TM) i7-1260P
flags : fpu avx avx2 avx_vnni
"""
SAPPHIRE = """model name : Intel(R) Xeon(R) Platinum 8480+
flags : avx2 avx512f avx512_vnni avx_vnni amx_bf16 amx_tile amx_int8
"""
ARM_I8MM = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp asimddp i8mm bf16
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x1
CPU part\t: 0xd40
"""
ARM_PLAIN = """processor\t: 0
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd08
"""


def _machine(text: str, cores: int = 2, gpus=()) -> dict:
    return pv.parse_cpuinfo(text) | {"cpus": cores, "cpus_usable": cores, "gpus": list(gpus)}


@pytest.mark.parametrize(
    ("text", "model", "isa", "summary", "slug"),
    [
        (INTEL_VNNI, "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", ["avx2", "avx512f", "avx512_vnni"],
         "AVX2, AVX-512, VNNI (AVX512_VNNI)", "intel-xeon-platinum-8375c-2c-avx512-vnni"),
        (AMD_AVX2, "AMD EPYC 7B12 64-Core Processor", ["avx2"], "AVX2, no VNNI", "amd-epyc-7b12-2c-avx2"),
        (ALDER_LAKE, "12th Gen Intel(R) Core(TM) i7-1260P", ["avx2", "avx_vnni"], "AVX2, VNNI (AVX_VNNI)",
         "12th-gen-intel-core-i7-1260p-2c-avx2-vnni"),
        (SAPPHIRE, "Intel(R) Xeon(R) Platinum 8480+",
         ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"],
         "AVX2, AVX-512, VNNI (AVX512_VNNI, AVX_VNNI), AMX (TILE, INT8, BF16)", "intel-xeon-platinum-8480-2c-amx"),
        (ARM_I8MM, "ARM Neoverse-V1", ["asimd", "asimddp", "i8mm"], "NEON, dot-product, i8mm",
         "arm-neoverse-v1-2c-i8mm"),
        (ARM_PLAIN, "ARM Cortex-A72", ["asimd"], "NEON, no dot-product, no i8mm", "arm-cortex-a72-2c-neon"),
    ],
)  # fmt: skip
def test_cpuinfo_flags_summary_and_slug(text, model, isa, summary, slug):
    m = _machine(text)
    assert m["cpu_model"] == model
    assert m["isa"] == isa  # the first processor's block only: the second one's flags are not read
    assert pv.isa_summary(m["family"], m["isa"]) == summary
    assert pv.slug(m) == slug


def test_isa_tier_takes_the_best_int8_instruction_set_and_each_flag_counts():
    x86 = ["avx2", "avx512f", "avx_vnni", "avx512_vnni", "amx_int8"]
    expected = ["amx", "avx512-vnni", "avx2-vnni", "avx512", "avx2", "x86-64"]
    # drop the best flag one at a time: each drop moves the tier down exactly one step
    assert [pv.isa_tier("x86", x86[: len(x86) - i]) for i in range(len(x86) + 1)] == expected
    assert pv.isa_tier("arm", ["asimd", "asimddp", "i8mm"]) == "i8mm"
    assert pv.isa_tier("arm", ["asimd", "asimddp"]) == "dotprod"
    assert pv.isa_tier("arm", ["asimd"]) == "neon"


def test_arm_model_falls_back_to_implementer_and_part_and_a_gpu_joins_the_slug():
    unknown = ARM_PLAIN.replace("0xd08", "0xfff")
    assert pv.parse_cpuinfo(unknown)["cpu_model"] == "ARM implementer 0x41 part 0xfff"
    m = _machine(AMD_AVX2, cores=16, gpus=[{"name": "NVIDIA H100 80GB HBM3", "memory_mb": 81559}])
    assert pv.slug(m) == "amd-epyc-7b12-16c-avx2-h100-80gb-hbm3"
    assert pv.parse_cpuinfo("") == {"cpu_model": None, "family": None, "isa": []}


def test_machine_is_a_stable_superset_and_the_record_names_commit_and_command():
    m = pv.machine()
    assert m == pv.machine()  # equal on every call: manifests compare machines by equality
    m["isa"].append("changed")
    assert "changed" not in pv.machine()["isa"]  # callers get a copy
    for key in ("platform", "cpus", "processor", "cpu_model", "cpus_usable", "isa", "isa_summary", "vnni",
                "memory_mb", "gpus", "onnxruntime", "providers", "slug"):  # fmt: skip
        assert key in m, key
    assert m["memory_mb"] > 0 and "CPUExecutionProvider" in m["providers"]
    assert re.fullmatch(r"[a-z0-9-]+-\d+c-[a-z0-9-]+", m["slug"]) and m["slug"] == pv.slug()
    rec = pv.record()
    assert set(rec) == {"machine", "versions", "commit", "command"}
    assert rec["commit"] is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", rec["commit"])
    assert rec["command"].startswith("python ")


@pytest.mark.parametrize(
    ("text", "vnni", "amx", "target"),
    [(INTEL_VNNI, True, False, "vnni"), (AMD_AVX2, False, False, "avx2"), (ALDER_LAKE, True, False, "vnni"),
     (SAPPHIRE, True, True, "vnni"), (ARM_I8MM, None, None, "i8mm"), (ARM_PLAIN, None, None, "neon")],
    ids=["avx512-vnni", "avx2-only", "avx-vnni", "amx", "arm-i8mm", "arm-plain"],
)  # fmt: skip
def test_cpu_record_says_vnni_amx_and_the_int8_kernel_class(text, vnni, amx, target):
    rec = pv.cpu_record(pv.parse_cpuinfo(text))
    assert (rec["vnni"], rec["amx"], rec["int8_target"]) == (vnni, amx, target)
    assert rec["isa_summary"] == pv.isa_summary(pv.parse_cpuinfo(text)["family"], rec["isa"])


def test_int8_target_each_flag_counts():
    # AVX-512 without VNNI saturates like AVX2: the class is the one without VNNI
    assert pv.int8_target("x86", ["avx2", "avx512f"]) == "avx2"
    assert pv.int8_target("x86", ["avx2", "avx512f", "avx512_vnni"]) == "vnni"
    assert pv.int8_target("x86", ["avx2", "avx_vnni"]) == "vnni"
    assert pv.int8_target("x86", []) == "x86-64"
    assert pv.int8_target("arm", ["asimd", "asimddp"]) == "dotprod"
    assert pv.int8_target(None, []) == "unknown"
    m = pv.machine()  # this machine's record carries the same fields, computed from its own flags
    assert m["int8_target"] == pv.int8_target(m["family"], m["isa"])
    assert m["family"] != "x86" or m["vnni"] == (m["int8_target"] == "vnni")
    assert set(pv.cpu_record({"family": m["family"], "isa": m["isa"]})) <= set(m)


def test_the_record_names_the_cpu_this_process_runs_on_under_an_emulator_too(monkeypatch):
    """Under ``qemu-x86_64 -cpu Haswell`` /proc/cpuinfo still lists the host's VNNI; CPUID (numpy's dispatch) does
    not. The hardware record, its summary and its slug follow CPUID, as the INT8 recipe choice does."""
    haswell = {"AVX2": True, "AVX512F": False, "AVX512VNNI": False}
    monkeypatch.setattr(pv, "_read", lambda path: SAPPHIRE if path == "/proc/cpuinfo" else None)
    monkeypatch.setattr(pv, "cpu_features", lambda: haswell)
    pv._cpu.cache_clear(), pv._machine.cache_clear()
    try:
        m = pv.machine()
    finally:
        monkeypatch.undo()
        pv._cpu.cache_clear(), pv._machine.cache_clear()
    assert m["isa"] == ["avx2"]  # AVX_VNNI and AMX, which CPUID here cannot confirm, go with the host's flags
    assert (m["isa_summary"], m["vnni"], m["int8_target"]) == ("AVX2, no VNNI", False, "avx2")
    assert m["slug"].endswith("-avx2") and m["cpu_model"] == "Intel(R) Xeon(R) Platinum 8480+"
    from onnx_search.models import int8_recipe as ir

    assert ir.this_cpu(SAPPHIRE, haswell)["isa"] == m["isa"]  # one definition for the record and the recipe
