"""WeightOnlyLinear: quantize, run, measure bytes, save/validate/load through safetensors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_model

from scalinglab.errors import InputError
from scalinglab.kernels import wo_bf16 as B
from scalinglab.kernels import wo_torch as T
from scalinglab.quant.weight_only import WeightOnlyLinear, check_tensors


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def _linear(k: int, n: int, gen, bias: bool = True) -> torch.nn.Linear:
    lin = torch.nn.Linear(k, n, bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(n, k, generator=gen) * 0.05)
        if bias:
            lin.bias.copy_(torch.randn(n, generator=gen))
    return lin


@pytest.mark.parametrize("bits,group_size", [(4, 128), (4, 0), (6, 64), (8, 32)],
                         ids=["W4-g128", "W4-per-channel", "W6-g64", "W8-g32"])
def test_forward_equals_dequantized_linear(bits, group_size, gen):
    lin = _linear(200, 48, gen)
    m = WeightOnlyLinear.from_linear(lin, bits, group_size)
    x = torch.randn(2, 5, 200, generator=gen)  # (B, T, in): leading dims kept
    y = m(x)
    assert y.shape == (2, 5, 48) and y.dtype == torch.float32
    torch.testing.assert_close(y, torch.nn.functional.linear(x, m.dequantize(), lin.bias.detach()),
                               rtol=1e-5, atol=1e-5)
    assert m(x.bfloat16()).dtype == torch.bfloat16
    # the quantized layer is close to the float one: error ≤ Σ_k |x_k|·s/2 per output
    err = (y - lin(x).detach()).abs()
    assert (err <= x.abs().sum(-1, keepdim=True) * m.scales.float().max() / 2).all()


def test_weight_bytes_are_measured_from_the_buffers(gen):
    d = 768
    m = WeightOnlyLinear.from_linear(_linear(d, d, gen), 4, 128)
    held = {name: b.numel() * b.element_size() for name, b in m.named_buffers()}
    assert held == {"codes": d * d // 2, "scales": d * 6 * 2, "zeros": d * 6, "bias": d * 4}
    assert m.weight_bytes() == sum(held.values())
    assert not list(m.parameters())  # no float weight left anywhere
    fp32_bytes = (d * d + d) * 4
    assert fp32_bytes / m.weight_bytes() >= 7.5  # W4, group 128, steps, zero points and bias included
    m8 = WeightOnlyLinear.from_linear(_linear(d, d, gen, bias=False), 8, 128)
    assert m8.weight_bytes() == d * d + d * 6 * 3 and m8.bias is None


def test_safetensors_roundtrip_validated_and_bit_identical(tmp_path, gen):
    m = WeightOnlyLinear.from_linear(_linear(100, 24, gen), 4, 32)  # 100 = 3·32 + 4: padded last group
    save_model(m, str(tmp_path / "w.safetensors"))
    tensors = load_file(str(tmp_path / "w.safetensors"))
    check_tensors(m.spec(), tensors)
    loaded = WeightOnlyLinear.from_spec(m.spec())
    loaded.load_state_dict(tensors)
    x = torch.randn(3, 100, generator=gen)
    assert torch.equal(loaded(x), m(x))


def test_dtype_casts_keep_the_stored_format(gen):
    lin = _linear(64, 16, gen)
    m = WeightOnlyLinear.from_linear(lin, 4, 32)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    torch.nn.Sequential(m).to(torch.bfloat16)
    assert m.scales.dtype == torch.float16 and m.bias.dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def _corrupt(tensors: dict, name: str, value: torch.Tensor) -> dict:
    return {**tensors, name: value}


def test_check_tensors_refuses_each_bad_tensor_in_one_line(gen):
    m = WeightOnlyLinear.from_linear(_linear(64, 16, gen), 6, 32)
    good = {k: v.clone() for k, v in m.state_dict().items()}
    bad = {
        "missing": {k: v for k, v in good.items() if k != "zeros"},
        "extra": _corrupt(good, "weight", torch.zeros(16, 64)),
        "dtype": _corrupt(good, "scales", good["scales"].float()),
        "shape": _corrupt(good, "codes", good["codes"][:, :32]),
        "code range": _corrupt(good, "codes", torch.full_like(good["codes"], 64)),
        "zero range": _corrupt(good, "zeros", torch.full_like(good["zeros"], 200)),
        "scale": _corrupt(good, "scales", torch.zeros_like(good["scales"])),
        "bias": _corrupt(good, "bias", torch.full_like(good["bias"], float("nan"))),
    }
    check_tensors(m.spec(), good)
    for case, tensors in bad.items():
        with pytest.raises(InputError) as exc:
            check_tensors(m.spec(), tensors, where="model.safetensors: h.0.mlp")
        assert "\n" not in str(exc.value) and str(exc.value).startswith("model.safetensors: h.0.mlp"), case


@pytest.mark.parametrize("change", [{"bits": 5}, {"bits": True}, {"group_size": -1}, {"group_size": 1},
                                    {"in_features": 0}, {"out_features": "16"}, {"bias": "yes"},
                                    {"format": "other"}, {"tensors": {}}],
                         ids=["bits-5", "bits-bool", "group-neg", "group-1", "in-0", "out-str", "bias-str",
                              "format", "tensors"])
def test_from_spec_refuses_bad_fields(change, gen):
    spec = {**WeightOnlyLinear.from_linear(_linear(64, 16, gen), 4, 32).spec(), **change}
    with pytest.raises(InputError):
        WeightOnlyLinear.from_spec(spec)


def test_from_float_refuses_bad_weights():
    with pytest.raises(InputError, match="2-D float"):
        WeightOnlyLinear.from_float(torch.zeros(8))
    with pytest.raises(InputError, match="NaN or inf"):
        WeightOnlyLinear.from_float(torch.full((4, 8), float("inf")))
    with pytest.raises(InputError, match="bias shape"):
        WeightOnlyLinear.from_float(torch.zeros(4, 8), torch.zeros(5))
    with pytest.raises(InputError, match="bits"):
        WeightOnlyLinear.from_float(torch.zeros(4, 8), bits=3)
    with pytest.raises(InputError, match="float16"):
        WeightOnlyLinear.from_float(torch.tensor([[-1e6, 1e6]]), bits=4, group_size=0)


def test_group_at_least_the_row_is_per_channel(gen):
    lin = _linear(40, 8, gen)
    a, b = WeightOnlyLinear.from_linear(lin, 4, 128), WeightOnlyLinear.from_linear(lin, 4, 0)
    assert a.group_size == 0 and a.spec() == b.spec()
    assert all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


_NO_BF16 = pytest.mark.skipif(not B.available(), reason="the CPU has no AVX-512 BF16: the bf16 kernel cannot run here")
_RUNTIME_PATHS = [
    pytest.param("bf16", 4, 3 * 4 * 128, marks=_NO_BF16),
    pytest.param("bf16", 8, 3 * 4 * 128, marks=_NO_BF16),
    pytest.param("torch_int4", 4, 4 * 4 * 128, marks=pytest.mark.skipif(
        not T.available(), reason="this torch has no CPU int4 kernel in the probed layout")),
]


@pytest.mark.parametrize(("kind", "bits", "table_bytes"), _RUNTIME_PATHS)
def test_bf16_paths_swap_layout_and_restore_it(tmp_path, gen, monkeypatch, kind, bits, table_bytes):
    if kind == "torch_int4":
        monkeypatch.setattr(WeightOnlyLinear, "use_bf16_kernel", False)
    lin = _linear(256, 128, gen)
    m = WeightOnlyLinear.from_linear(lin, bits, 64)
    codes, stored = m.codes.clone(), m.weight_bytes()
    x = torch.randn(4, 256, generator=gen)
    y_ref = torch.nn.functional.linear(x.bfloat16().float(), m.dequantize(), lin.bias.detach())
    y = m(x.bfloat16())  # decode shape, bf16: a bf16 kernel
    assert m._runtime[0] == kind
    assert m.codes.numel() == 0 and m.weight_bytes() == stored  # its layout replaced ours, same bytes
    assert m.runtime_bytes() == table_bytes  # 4 groups × 128 rows: its step/zero-point tables
    assert (y.float() - y_ref).abs().max() <= 0.02 * y_ref.abs().max()
    assert torch.equal(m.state_dict()["codes"], codes)  # checkpoints hold our layout
    save_model(m, str(tmp_path / "w.safetensors"))
    loaded = WeightOnlyLinear.from_spec(m.spec())
    loaded.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    assert torch.equal(loaded(x.bfloat16()), y)
    assert torch.equal(m(x), loaded(x))  # fp32: back on numba, our layout restored
    assert torch.equal(m.codes, codes) and m.runtime_bytes() == 0
    m(x.bfloat16())
    m.load_state_dict(loaded.state_dict())  # loading into a swapped layer
    assert torch.equal(m.codes, codes) and m.runtime_bytes() == 0
    m(x.bfloat16())
    m.load_state_dict(loaded.state_dict())  # loading into a swapped layer
    assert torch.equal(m.codes, codes)


@_NO_BF16
def test_byte_codes_take_the_bf16_kernel_only_at_decode_shapes(gen):
    from scalinglab.quant.weight_only import BYTE_BF16_MAX_M

    m = WeightOnlyLinear.from_linear(_linear(64, 32, gen), 8, 32)
    ref_w = m.dequantize()
    for rows, kind in ((BYTE_BF16_MAX_M, "bf16"), (BYTE_BF16_MAX_M + 1, None), (1, "bf16")):
        x = torch.randn(rows, 64, generator=gen).bfloat16()
        y = m(x)
        assert (m._runtime and m._runtime[0]) == kind
        ref = torch.nn.functional.linear(x.float(), ref_w, m.bias)
        assert (y.float() - ref).abs().max() <= 0.02 * ref.abs().max()
