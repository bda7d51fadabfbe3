"""Capability detection: cpuinfo parsing, the environment's caps, the cache key."""

import dataclasses

import pytest

from scalinglab.hw import capabilities as caps_mod

ZEN4 = ("avx2", "fma", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16")
SPR = (*ZEN4, "amx_tile", "amx_int8", "amx_bf16")


@pytest.mark.parametrize(
    ("flags", "env", "torch_cap", "want"),
    [
        (ZEN4, {}, "AVX512", ZEN4),
        (ZEN4, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "AVX512", ("avx2", "fma")),
        (ZEN4, {}, "AVX2", ("avx2", "fma")),
        (ZEN4, {"ONEDNN_MAX_CPU_ISA": "AVX2_VNNI"}, "AVX512", ("avx2", "fma", "avx_vnni")),
        (SPR, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}, "AVX512", (*ZEN4[:-1],)),
        (SPR, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "AVX512", ZEN4),
        (SPR, {"FBGEMM_ENABLE_INSTRUCTIONS": "AVX512"}, "AVX512", ("avx2", "fma", "avx_vnni", "avx512f", "avx512bw")),
        (SPR, {}, "AVX512", SPR),
        (ZEN4, {}, "DEFAULT", ()),
    ],
    ids=["native", "onednn-avx2", "aten-avx2", "avx2-vnni", "avx512-vnni", "avx512-bf16", "fbgemm-avx512",
         "amx", "no-simd"],
)
def test_environment_caps_the_flags(flags, env, torch_cap, want):
    assert caps_mod.effective_flags(flags, env, torch_cap) == want


def test_cpuinfo_parsing(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx2 fma avx512f\n\n"
                 "processor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu\n")
    assert caps_mod._cpuinfo(f) == ("AMD EPYC 7B13", {"fpu", "sse", "avx2", "fma", "avx512f"})
    model, flags = caps_mod._cpuinfo(tmp_path / "absent")
    assert flags == set() and model


def test_detect_and_cache_key():
    caps = caps_mod.detect()
    assert set(caps.flags) <= set(caps.cpu_flags) and caps.threads >= 1
    assert caps.isa in ("amx", "avx512-vnni-bf16", "avx512-vnni", "avx512", "avx2-vnni", "avx2", "base")
    key = caps.cache_key()
    assert key == caps_mod.detect().cache_key() and len(key) == 16
    for change in ({"torch_version": "0.0"}, {"env": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}, {"threads": caps.threads + 1},
                   {"cpu_model": "other"}):
        assert dataclasses.replace(caps, **change).cache_key() != key
