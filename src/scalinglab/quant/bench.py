"""Int8 linear benchmark: fp32 vs bf16 vs our W8A8 and LLM.int8 (with decomposition), one run.

For each width d (a d × d layer) and M = batch × tokens rows, times ``F.linear`` in fp32 and bf16 and
our ``QuantLinear`` forward end to end on the int8 path hw/ chose (activation quantization + int8 GEMM + epilogue,
fp32 in and out), prints times and ratios, and the measured weight bytes. LLM.int8 inputs carry
max(1, d/512) outlier columns of magnitude ~10–20 (GPT-2 117M has one, 6.7B models ~6 per 4096), so
the decomposition really runs. Times are the fastest call over 15 interleaved rounds. If torchao
(Int8DynamicActivationInt8Weight) or bitsandbytes (Linear8bitLt, threshold 6) import, they join as peers,
timed in a child process of the same run on the same layers and inputs.
"""

from __future__ import annotations

import copy

import torch
from torch.nn.functional import linear as f

from scalinglab.quant.calibrate import ChannelStats
from scalinglab.quant.config import OUTLIER_THRESHOLD
from scalinglab.quant.evaluate import tensor_bytes
from scalinglab.quant.methods.llm_int8 import LLMInt8Config, llm_int8_linear
from scalinglab.quant.methods.rtn import RTNConfig, rtn_linear

__all__ = ["run_int8_bench", "DIMS", "MS"]

DIMS = (768, 1024, 2048, 4096)
MS = (1, 16, 256, 2048)
ROUNDS = 15
ROUND_SECONDS = 0.02  # per method per round; fast calls are repeated inside a round


def _time_all(fns: dict, rounds: int = ROUNDS) -> dict[str, float]:
    """Seconds per call of each function: the fastest single call over ``rounds`` interleaved rounds (each
    method runs ≥ ROUND_SECONDS per round). Interleaving spreads load from other processes over every
    method alike; the minimum is the timing least disturbed by them (as ``timeit`` recommends)."""
    from scalinglab.hw.calibrate import clock

    now = clock()  # CPU time with one thread: a busy machine's preemptions do not count
    reps = {}
    for name, fn in fns.items():
        fn()
        t = now()
        fn()
        reps[name] = max(1, int(ROUND_SECONDS / max(now() - t, 1e-7)))
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(reps[name]):
                t = now()
                fn()
                best[name] = min(best[name], now() - t)
    return best


def _peers():
    peers = {}
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig
        from torchao.quantization import quantize_ as ao_quantize_

        def make_ao(lin):
            m = torch.nn.Sequential(lin)
            ao_quantize_(m, Int8DynamicActivationInt8WeightConfig())
            return m

        peers["torchao W8A8"] = make_ao
    except Exception:  # not installed or built for another torch
        pass
    try:
        import bitsandbytes as bnb

        def make_bnb(lin):
            m = bnb.nn.Linear8bitLt(lin.in_features, lin.out_features, has_fp16_weights=False, threshold=OUTLIER_THRESHOLD)
            m.load_state_dict(lin.state_dict())
            return m.to("cpu")

        peers["bnb LLM.int8"] = make_bnb
    except Exception:
        pass
    return peers


def _layer(d: int):
    """The d × d layer of one benchmark width and its outlier columns, the same in every process."""
    torch.manual_seed(d)
    lin = torch.nn.Linear(d, d)
    g = torch.Generator().manual_seed(d)
    n_out = max(1, d // 512)
    out_cols = torch.randperm(d, generator=g)[:n_out]
    return lin, out_cols, g


def _input(d: int, m: int, out_cols: torch.Tensor) -> torch.Tensor:
    x = torch.randn(m, d, generator=torch.Generator().manual_seed(100_003 * d + m))
    x[:, out_cols] *= 15
    return x


@torch.no_grad()
def _time_peers(dims, ms, threads: int) -> tuple[list[str], dict]:
    """Peers timed in a child process: their native code brings its own thread pools, which left spinning
    beside ours slowed our rows by up to 1.4× when they ran interleaved in one process."""
    if threads:
        torch.set_num_threads(threads)
    peers = _peers()
    times = {}
    for d in dims:
        lin, out_cols, _ = _layer(d)
        mods = {name: make(copy.deepcopy(lin)) for name, make in peers.items()}
        for m in ms:
            x = _input(d, m, out_cols)
            times[(d, m)] = _time_all({name: (lambda x=x, mod=mod: mod(x)) for name, mod in mods.items()})
    return list(peers), times


def _header(all_paths: bool) -> tuple[str, list[str]]:
    from scalinglab.hw import detect, int8_plan
    from scalinglab.hw.cli import doctor_report

    caps, plan = detect(), int8_plan()
    rep = doctor_report()
    paths = [p for p in rep["calibration"]["int8_ms"]] if all_paths else []
    line = (f"CPU {caps.cpu_model}, effective ISA {caps.isa} (torch kernels {caps.torch_capability}"
            + (", " + " ".join(f"{k}={v}" for k, v in caps.env.items()) if caps.env else "") + "); "
            f"int8 paths chosen by hw/: {plan.describe()}; "
            f"float default: {rep['choices']['float_default']}")
    return line, paths


@torch.no_grad()
def run_int8_bench(quick: bool = False, threads: int = 0, dims=DIMS, ms=MS, all_paths: bool = False,
                   peers: bool = True) -> list[dict]:
    """Times fp32, bf16 and our W8A8 / LLM.int8 on the path hw/ chose (``all_paths``: W8A8 on every
    available path too), prints ratios against fp32 and against the machine's float default."""
    import multiprocessing

    from scalinglab.hw.dispatch import bucket

    if threads:
        torch.set_num_threads(threads)
    if quick:
        dims, ms = (768, 1024), (1, 16, 256)
    peer_names, peer_times = [], {}
    if peers:
        with multiprocessing.get_context("spawn").Pool(1) as pool:  # peers first, in their own process
            peer_names, peer_times = pool.apply(_time_peers, (dims, ms, torch.get_num_threads()))
    hw_line, paths = _header(all_paths)
    timer = "process CPU time (1 thread)" if torch.get_num_threads() == 1 else "wall time"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, timed by {timer}; peers: {', '.join(peer_names) or 'none'}"
          + (" (timed in a child process of this run)" if peer_names else ""))
    print(hw_line)
    head = (f"{'d':>5} {'M':>5} {'fp32 ms':>9} {'bf16 ms':>9} {'W8A8 ms':>9} {'int8() ms':>9} "
            f"{'W8A8/fp32':>9} {'W8A8/bf16':>9} {'int8()/fp32':>11} {'int8()/bf16':>11} {'|O|':>4} {'path':>7}")
    print(head + "".join(f" {'W8A8 ' + p + ' ms':>16}" for p in paths) + "".join(f" {p + ' ms':>16}" for p in peer_names))
    rows = []
    for d in dims:
        lin, out_cols, g = _layer(d)
        w, b = lin.weight.detach(), lin.bias.detach()
        wb, bb = w.bfloat16(), b.bfloat16()
        n_out = out_cols.numel()
        calib = torch.randn(256, d, generator=g)
        calib[:, out_cols] *= 15
        st = ChannelStats(d)
        st.update(calib)
        w8a8 = rtn_linear(w, b, None, RTNConfig())
        int8 = llm_int8_linear(w, b, st, LLMInt8Config())
        fp_bytes = tensor_bytes([w, b])
        mem = {"W8A8": fp_bytes / tensor_bytes(w8a8.buffers()), "LLM.int8": fp_bytes / tensor_bytes(int8.buffers())}
        pinned = {p: rtn_linear(w, b, None, RTNConfig()).set_path(p, int8_full_range())
                  for p in paths}
        for m in ms:
            x = _input(d, m, out_cols)
            xb = x.bfloat16()
            fns = {
                "fp32": lambda x=x, w=w, b=b: f(x, w, b),
                "bf16": lambda xb=xb, wb=wb, bb=bb: f(xb, wb, bb),
                "W8A8": lambda x=x, mod=w8a8: mod(x),
                "LLM.int8": lambda x=x, mod=int8: mod(x),
                **{f"W8A8 {p}": (lambda x=x, mod=mod: mod(x)) for p, mod in pinned.items()},
            }
            t = {**_time_all(fns), **peer_times.get((d, m), {})}
            n_seen = int((x.abs() >= OUTLIER_THRESHOLD).any(0).sum())
            fdef = min(t["fp32"], t["bf16"])
            row = {"d": d, "M": m, **{f"{k}_ms": 1e3 * v for k, v in t.items()}, "outlier_cols": n_seen,
                   "path": w8a8.paths[bucket(m)], "w8a8_vs_fp32": t["fp32"] / t["W8A8"], "w8a8_vs_bf16": t["bf16"] / t["W8A8"],
                   "int8_vs_fp32": t["fp32"] / t["LLM.int8"], "int8_vs_bf16": t["bf16"] / t["LLM.int8"],
                   "w8a8_vs_float": fdef / t["W8A8"], "int8_vs_float": fdef / t["LLM.int8"],
                   "mem_ratio_w8a8": mem["W8A8"], "mem_ratio_llm_int8": mem["LLM.int8"]}
            rows.append(row)
            line = (f"{d:>5} {m:>5} {1e3 * t['fp32']:>9.3f} {1e3 * t['bf16']:>9.3f} {1e3 * t['W8A8']:>9.3f} "
                    f"{1e3 * t['LLM.int8']:>9.3f} {row['w8a8_vs_fp32']:>8.2f}× {row['w8a8_vs_bf16']:>8.2f}× "
                    f"{row['int8_vs_fp32']:>10.2f}× {row['int8_vs_bf16']:>10.2f}× {n_seen:>4} {row['path']:>7}")
            print(line + "".join(f" {1e3 * t['W8A8 ' + p]:>16.3f}" for p in paths)
                  + "".join(f" {1e3 * t[p]:>16.3f}" for p in peer_names), flush=True)
        print(f"{'':>5} weight memory (measured): fp32 {fp_bytes / 2**20:.2f} MiB; W8A8 {mem['W8A8']:.2f}× smaller, "
              f"LLM.int8 {mem['LLM.int8']:.2f}× smaller ({n_out} float outlier columns kept)")
    worst = {k: min(r[k] for r in rows) for k in ("w8a8_vs_fp32", "int8_vs_fp32", "w8a8_vs_float", "int8_vs_float")}
    ok = min(worst.values()) >= 1.0
    print(f"slowest row vs fp32: W8A8 {worst['w8a8_vs_fp32']:.2f}×, LLM.int8 {worst['int8_vs_fp32']:.2f}×; "
          f"vs the float default (faster of fp32/bf16 per row): W8A8 {worst['w8a8_vs_float']:.2f}×, "
          f"LLM.int8 {worst['int8_vs_float']:.2f}× — every quantized layer at least as fast as float: "
          f"{'yes' if ok else 'NO'}")
    return rows


def int8_full_range() -> bool:
    from scalinglab.hw import calibration

    return calibration().fbgemm_full_range
