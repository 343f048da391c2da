"""Mamba vs a Transformer of matched size on long sequences (GPU).

Measures, for ``Mamba(256, 4)`` and a ``TransformerEncoder`` with the same
parameter count (d_model 256, 4 layers, feed-forward width chosen to match),
batch 8, bf16 autocast:

1. training step (forward, backward, AdamW) time and peak memory for
   L in {1k, 4k, 16k, 64k} -- the Transformer until it runs out of memory --
   eager, and through ``sciamba.nn.GraphedTrainStep`` (the step replayed from
   a CUDA graph, for both models);
2. Mamba forward at L = 1,000,000 with batch 1 (time, peak memory, finite);
3. streaming generation throughput at a context of 8k, batch 1, 8 and 64, float32,
   no gradient: ``Mamba.step`` (eager, and replayed as a CUDA graph by
   ``sciamba.nn.GraphedStep``, which its fixed-size state allows) against the
   Transformer's KV-cache ``step``, as run and GPU-only (the steps' summed kernel
   time: at small batch the eager steps are bound by the host).

Targets (issue 4): Mamba's memory linear in L; Mamba faster to train than the
Transformer from L = 4k; >= 5x streaming throughput at 8k context.

Usage::

    python benchmarks/bench_scaling.py [--fast] [--streaming-only] [--results benchmarks/RESULTS.md]
        [--json out.json]

Prints a table and appends it, with date, device and the selective scan backend
that ran, to the results file. Needs a CUDA device (exits 0 with a message otherwise).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import math
import statistics
import sys
import time

import torch


def _matched_transformer(target_params: int, d_model: int, n_layers: int, n_heads: int):
    from sciamba.nn import TransformerEncoder

    # Per layer: attention 4 d^2 + 4 d, two LayerNorms 4 d, MLP 2 d f + f + d; final norm 2 d.
    fixed = n_layers * (4 * d_model * d_model + 4 * d_model + 4 * d_model + d_model) + 2 * d_model
    d_ff = max(1, round((target_params - fixed) / (n_layers * (2 * d_model + 1))))
    return TransformerEncoder(d_model, n_layers, n_heads=n_heads, d_ff=d_ff, causal=True), d_ff


def _cuda_times(fn, warmup: int, reps: int) -> list[float]:
    """Wall times of ``reps`` calls of ``fn`` in ms, each synchronized with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return times


def _cuda_time(fn, warmup: int, reps: int) -> float:
    """Median wall time of ``fn`` in ms (:func:`_cuda_times`)."""
    return statistics.median(_cuda_times(fn, warmup, reps))


def _batch(batch: int, L: int, d_model: int) -> tuple:
    return torch.randn(batch, L, d_model, device="cuda"), torch.randn(batch, L, d_model, device="cuda")


def _loss(y, target):
    return torch.nn.functional.mse_loss(y.float(), target)


def _train_step_factory(model, batch: int, L: int, d_model: int, one_thread: bool = False):
    """The eager training step as users write it: forward under bf16 autocast, MSE, backward, AdamW.

    ``one_thread``: the backward runs on the calling thread
    (``torch.autograd.set_multithreading_enabled(False)``) instead of autograd's
    CUDA worker thread, whose two handoffs per backward and slower Python
    cost these hosts host time (RESULTS.md, "Autograd's device thread").
    """
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, target = _batch(batch, L, d_model)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = _loss(model(x), target)
        with torch.autograd.set_multithreading_enabled(not one_thread):
            loss.backward()
        opt.step()

    return step


def _graph_ms(model, batch: int, L: int, d_model: int, reps: int) -> float:
    """One training step through ``sciamba.nn.GraphedTrainStep``: the same step replayed from a CUDA graph.

    Replaying removes Python, autograd and launch overhead (what is left is the
    GPU's time, the batch's copy into the static buffers and the call's
    checks), so this is what the step costs where the host is not the limit.
    Both models go through the same helper.
    """
    from sciamba.nn import GraphedTrainStep

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, capturable=True)
    step = GraphedTrainStep(model, _loss, opt, autocast=torch.bfloat16)
    x, target = _batch(batch, L, d_model)
    for _ in range(step.warmup + 1):  # eager warm-up calls, then the capture
        step(x, target)
    assert step.graphed
    ms = _cuda_time(lambda: step(x, target), warmup=1, reps=reps)
    del step
    return ms


def bench_training(models: dict, lengths, batch: int, d_model: int, reps: int) -> list[dict]:
    rows = []
    for L in lengths:
        for name, model in models.items():
            if any(r["model"] == name and r["status"] == "OOM" for r in rows):
                rows.append(dict(model=name, L=L, status="OOM", ms=None, peak_gb=None))
                continue
            torch.cuda.empty_cache()
            try:
                step = _train_step_factory(model, batch, L, d_model)
                step()  # compile / autotune outside the timing
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                eager = _cuda_times(step, warmup=1, reps=reps)
                peak = torch.cuda.max_memory_allocated()  # of the eager step alone
                step1 = _train_step_factory(model, batch, L, d_model, one_thread=True)
                one = []
                for _ in range(3):  # alternating rounds: neither column pays for going first
                    one += _cuda_times(step1, warmup=1, reps=reps)
                    eager += _cuda_times(step, warmup=1, reps=reps)
                ms, ms1 = statistics.median(eager), statistics.median(one)
                del step, step1
                for p in model.parameters():
                    p.grad = None
                try:
                    gms = _graph_ms(model, batch, L, d_model, reps)
                except (torch.OutOfMemoryError, RuntimeError) as exc:  # report, do not hide
                    print(f"  graph capture failed for {name} at L={L}: {type(exc).__name__}: {str(exc)[:120]}")
                    gms = None
                rows.append(
                    dict(model=name, L=L, status="ok", ms=ms, one_thread_ms=ms1, peak_gb=peak / 2**30,
                         act_gb=(peak - base) / 2**30, graph_ms=gms)
                )
            except torch.OutOfMemoryError:
                rows.append(dict(model=name, L=L, status="OOM", ms=None, peak_gb=None))
            finally:
                for p in model.parameters():
                    p.grad = None
                gc.collect()  # optimizers hold reference cycles: free their state before the next row
                torch.cuda.empty_cache()
            r = rows[-1]
            detail = "" if r["ms"] is None else "%.1f ms (1-thread autograd %.1f)  %.2f GB  graph %s ms" % (
                r["ms"], r["one_thread_ms"], r["peak_gb"],
                "-" if r.get("graph_ms") is None else "%.1f" % r["graph_ms"])
            print(f"  train {name:12s} L={L:>6}  {r['status']}  {detail}", flush=True)
    return rows


def profile_step(models: dict, L: int, batch: int, d_model: int) -> None:
    """Top CUDA kernels of one training step per model (where the time goes)."""
    from torch.profiler import ProfilerActivity, profile

    for name, model in models.items():
        step = _train_step_factory(model, batch, L, d_model)
        for _ in range(3):
            step()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step()
            torch.cuda.synchronize()
        print(f"--- {name}, L={L}, batch {batch}")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60))


@torch.no_grad()
def bench_million(mamba, L: int, d_model: int) -> dict:
    torch.cuda.empty_cache()
    x = torch.randn(1, L, d_model, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        # Warm up at the full length: Triton specializes integer arguments (16 | nseg
        # and the like), so a shorter warm-up left a compilation inside the timing
        # (the 1.2-2.0 s recorded before session 16).
        mamba(x)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        y = mamba(x)
        torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1e3
    return dict(L=L, ms=ms, peak_gb=torch.cuda.max_memory_allocated() / 2**30, finite=bool(torch.isfinite(y).all()))


@torch.no_grad()
def _kernel_ms(fn) -> float:
    """Summed GPU time of the kernels ``fn`` launches (torch.profiler), ms: its cost without host
    overhead or idle gaps between kernels, which a replayed CUDA graph approaches."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(e.self_device_time_total for e in prof.key_averages()) / 1e3


@torch.no_grad()  # inference, as streaming runs: no graph recorded for either model
def bench_streaming(mamba, transformer, context: int, n_steps: int, batch: int, d_model: int) -> dict:
    """Steps per second of ``n_steps`` generation steps after a ``context``-long prefill, float32.

    For each model: as run (eager; Mamba also replayed by ``GraphedStep``) and GPU-only (the summed
    kernel time of the same steps, :func:`_kernel_ms`): at small batch both eager steps wait on the
    host, so only the GPU-only column compares the models' own work.
    """
    out = {"batch": batch}
    x_ctx = torch.randn(batch, context, d_model, device="cuda")
    x_t = torch.randn(batch, d_model, device="cuda")

    # Mamba: prefill the state with the context (chunked forward), then O(1) steps.
    _, state = mamba(x_ctx, return_state=True)

    def mamba_steps():
        for _ in range(n_steps):
            mamba.step(x_t, state)

    out["mamba_eager_steps_per_s"] = n_steps / (_cuda_time(mamba_steps, 1, 3) / 1e3)
    out["mamba_gpu_steps_per_s"] = n_steps / (_kernel_ms(mamba_steps) / 1e3)
    out["mamba_state_mb"] = state.nbytes() / 2**20
    del state
    try:
        # The state has a fixed size and step() updates it in place: one step is a
        # static graph, replayed by sciamba.nn.GraphedStep (the public streaming API).
        from sciamba.nn import GraphedStep

        streamer = GraphedStep(mamba, batch)  # each call: input copy, replay, output copy
        streamer.prefill(x_ctx)

        def mamba_graph_steps():
            for _ in range(n_steps):
                streamer(x_t)

        out["mamba_graph_steps_per_s"] = n_steps / (_cuda_time(mamba_graph_steps, 1, 3) / 1e3)
        del streamer
    except Exception as exc:  # report, do not hide: capture needs sync-free kernels
        out["mamba_graph_steps_per_s"] = None
        out["mamba_graph_error"] = f"{type(exc).__name__}: {exc}"[:200]

    # Transformer: KV cache holding the context, then one cached step per token.
    def prefilled():
        kv = transformer.allocate_state(batch, max_len=context + n_steps + 1, device="cuda")
        transformer(x_ctx, state=kv, return_state=True)
        return kv

    def transformer_steps():
        kv = prefilled()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n_steps):
            transformer.step(x_t, kv)
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end)

    transformer_steps()
    ms = statistics.median(transformer_steps() for _ in range(3))
    out["transformer_kv_steps_per_s"] = n_steps / (ms / 1e3)
    kv = prefilled()
    out["transformer_gpu_steps_per_s"] = n_steps / (_kernel_ms(lambda: [transformer.step(x_t, kv)
                                                                      for _ in range(n_steps)]) / 1e3)
    del kv
    out["transformer_cache_mb"] = 2 * transformer.n_layers * batch * (context + n_steps) * d_model * 4 / 2**20
    torch.cuda.empty_cache()
    return out


def _markdown(meta: dict, train: list[dict], million: dict, stream: list[dict]) -> str:
    lines = [
        f"\n## bench_scaling ({meta['date']}, {meta['device']})\n",
        f"torch {meta['torch']}, selective scan backend `{meta['backend']}`, bf16 autocast, "
        f"batch {meta['batch']}. Mamba(d_model=256, 4 layers) {meta['mamba_params']:,} parameters vs "
        f"TransformerEncoder(256, 4 layers, 4 heads, d_ff={meta['d_ff']}, SDPA) "
        f"{meta['transformer_params']:,} parameters.\n",
        "Training step (forward + backward + AdamW), median of timed steps after warm-up; *eager* is the "
        "step as users run it, *1-thread* the same eager step with its backward on the calling thread "
        "(`torch.autograd.set_multithreading_enabled(False)`; the two are timed in alternating rounds), "
        "*graphed* the same step through "
        "`sciamba.nn.GraphedTrainStep` (captured once as a CUDA graph and replayed: no Python, autograd or "
        "launch overhead, so about the time the GPU itself needs):\n",
        "| L | Mamba eager / 1-thread / graphed ms | Mamba peak GB | Transformer eager / 1-thread / graphed ms "
        "| Transformer peak GB | Transformer / Mamba eager (1-thread, graphed) |",
        "|---|---|---|---|---|---|",
    ]
    if not train:  # --streaming-only
        del lines[2:]
    by = {(r["model"], r["L"]): r for r in train}
    for L in sorted({r["L"] for r in train}):
        m, t = by[("mamba", L)], by[("transformer", L)]
        def fmt(r, k):
            if r["status"] == "OOM":
                return "OOM"
            return "-" if r.get(k) is None else f"{r[k]:.{2 if k == 'peak_gb' else 1}f}"

        def times(r):
            return " / ".join(fmt(r, k) for k in ("ms", "one_thread_ms", "graph_ms"))

        def quotient(k):
            return "-" if not (m.get(k) and t.get(k)) else f"{t[k] / m[k]:.2f}"

        ratio = "-"
        if "OOM" not in (m["status"], t["status"]):
            ratio = f"{quotient('ms')} ({quotient('one_thread_ms')}, {quotient('graph_ms')})"
        lines.append(f"| {L:,} | {times(m)} | {fmt(m, 'peak_gb')} | {times(t)} | {fmt(t, 'peak_gb')} | {ratio} |")
    ok = [r for r in train if r["model"] == "mamba" and r["status"] == "ok"]
    if len(ok) >= 2:
        Ls = [math.log(r["L"]) for r in ok]
        act = [math.log(max(r["act_gb"], 1e-6)) for r in ok]
        n = len(ok)
        mx, my = sum(Ls) / n, sum(act) / n
        slope = sum((a - mx) * (b - my) for a, b in zip(Ls, act)) / sum((a - mx) ** 2 for a in Ls)
        lines.append(f"\nMamba training memory above the weights grows as L^{slope:.2f} (log-log fit; 1 = linear).")
    if million:
        lines.append(
            f"\nMamba forward (inference, no gradient), batch 1, L = {million['L']:,}: {million['ms']:.0f} ms, "
            f"peak {million['peak_gb']:.2f} GB, "
            f"finite output: {million['finite']}."
        )
    lines.append(
        f"\nStreaming generation at {meta['context']:,} context, float32, {meta['n_steps']} steps after the "
        "prefill, steps per second: *as run* (eager, or replayed from a CUDA graph by `GraphedStep`) and "
        "*GPU-only* (the same steps' summed kernel time, torch.profiler: no host overhead, no idle gaps; "
        "what a replayed graph approaches). At small batch both eager steps wait on the host; the "
        "GPU-only column compares the models' own work.\n")
    lines.append("| batch | model | steps/s as run | steps/s GPU-only | state / cache MB "
                 "| vs Transformer (as run / GPU-only) |")
    lines.append("|---|---|---|---|---|---|")
    for st in stream:
        b, tr, tg = st["batch"], st["transformer_kv_steps_per_s"], st["transformer_gpu_steps_per_s"]
        me, mg, mb = st["mamba_eager_steps_per_s"], st["mamba_gpu_steps_per_s"], st["mamba_state_mb"]
        lines.append(f"| {b} | Transformer, KV cache (eager) | {tr:,.0f} | {tg:,.0f} | "
                     f"{st['transformer_cache_mb']:.1f} | 1.00 / 1.00 |")
        lines.append(f"| {b} | Mamba.step (eager) | {me:,.0f} | {mg:,.0f} | {mb:.2f} | "
                     f"{me / tr:.2f} / {mg / tg:.2f} |")
        if st.get("mamba_graph_steps_per_s"):
            g = st["mamba_graph_steps_per_s"]
            lines.append(f"| {b} | GraphedStep (Mamba.step replayed as a CUDA graph) | {g:,.0f} | - | "
                         f"{mb:.2f} | {g / tr:.2f} / - |")
        else:
            lines.append(f"| {b} | GraphedStep | failed: {st.get('mamba_graph_error')} | | | |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--results", default="benchmarks/RESULTS.md", help="markdown file to append to ('' = none)")
    ap.add_argument("--json", default=None, help="also write the raw numbers here")
    ap.add_argument("--profile", type=int, default=0, metavar="L",
                    help="only profile one Mamba and one Transformer training step at length L")
    ap.add_argument("--streaming-only", action="store_true", help="only the streaming table")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_scaling needs a CUDA device; none found, nothing measured.")
        return 0
    from sciamba.kernels import available_backends
    from sciamba.nn import Mamba, describe

    torch.manual_seed(0)
    d_model, n_layers, batch = 256, 4, 8
    lengths = [1024, 4096] if args.fast else [1024, 4096, 16384, 65536]
    million = 65536 if args.fast else 1_000_000
    # Streaming at bench's batch and at a larger one, where the KV cache's reads, not the
    # host, decide the Transformer's step (the regime of the Mamba paper's throughput figure).
    # Batch 1: one recording streamed sample by sample.
    context, n_steps, stream_batches = (1024, 50, (8,)) if args.fast else (8192, 200, (1, 8, 64))

    mamba = Mamba(d_model, n_layers).cuda()
    m_params = describe(mamba).n_params
    transformer, d_ff = _matched_transformer(m_params, d_model, n_layers, n_heads=4)
    transformer = transformer.cuda()
    t_params = describe(transformer).n_params
    meta = dict(
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        device=torch.cuda.get_device_name(), torch=torch.__version__,
        backend=available_backends("cuda").auto, batch=batch, mamba_params=m_params,
        transformer_params=t_params, d_ff=d_ff, context=context, n_steps=n_steps,
    )
    print(f"device {meta['device']}, backend {meta['backend']}, params mamba {m_params:,} "
          f"transformer {t_params:,} (d_ff {d_ff})", flush=True)
    if args.profile:
        profile_step({"mamba": mamba, "transformer": transformer}, args.profile, batch, d_model)
        return 0
    train, mil = [], None
    if not args.streaming_only:
        train = bench_training({"mamba": mamba, "transformer": transformer}, lengths, batch, d_model,
                               reps=2 if args.fast else 3)
        mil = bench_million(mamba.eval(), million, d_model)
        print(f"  1M forward: {mil}", flush=True)
    stream = []
    for b in stream_batches:
        stream.append(bench_streaming(mamba.eval(), transformer.eval(), context, n_steps, b, d_model))
        print(f"  streaming: {stream[-1]}", flush=True)
    md = _markdown(meta, train, mil, stream)
    print(md)
    if args.results:
        with open(args.results, "a") as fh:
            fh.write(md)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(meta=meta, train=train, million=mil, stream=stream), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
