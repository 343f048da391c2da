"""Selective copying: the task that separates Mamba from linear time-invariant SSMs.

Gu & Dao (2023, section 4.1) scatter a few data tokens at random positions in a
long stretch of noise and ask the model to output them in order. Because the
spacing is random, a time-invariant model (S4, S4D) cannot learn one fixed
convolution kernel that picks them out; Mamba's input-dependent step size and
B, C let it decide, token by token, what to keep. The paper reports 18.3 %
accuracy for a 2-layer S4 and 97.0 % for a 2-layer Mamba (sequence length
4096, 16 tokens, vocabulary 16).

This script trains a 2-layer Mamba and a 2-layer S4D of the same width on
freshly generated batches (``sciamba.nn.make_selective_copying``), evaluates both
on held-out sequences, and writes ``selective_copying.png`` (accuracy during
training) and ``selective_copying.md`` (final accuracies) to ``--outdir``.

The default (sequence 256, 8 tokens, 4000 steps of batch 64) is the run recorded
in ``benchmarks/RESULTS.md``: about a minute per model on an H100, of the order
of an hour per model on a 2-core CPU (with fewer steps Mamba has not finished
learning: 1500 steps of batch 32 left it at 54 %). ``--paper`` uses the paper's
sizes (wants a GPU); ``--fast`` or ``SCIAMBA_FAST=1`` is a seconds-long smoke run.

Run::

    python examples/selective_copying.py [--fast | --paper] [--outdir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from torch import nn

from sciamba.nn import describe, make_backbone, make_selective_copying

PAPER = {"s4d": 18.3, "mamba": 97.0}  # Gu & Dao (2023), Table 1 (S4 and Mamba, 2 layers)


class CopyModel(nn.Module):
    """Token embedding -> backbone -> classifier read at the marker positions."""

    def __init__(self, backbone: str, vocab_size: int, n_tokens: int, d_model: int, n_layers: int, d_state: int):
        super().__init__()
        self.n_tokens = n_tokens
        self.embed = nn.Embedding(vocab_size + 2, d_model)  # data tokens, noise, marker
        self.backbone = make_backbone(backbone, d_model, n_layers, d_state=d_state)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.backbone(self.embed(tokens))  # (b L d)
        return self.head(h[:, -self.n_tokens :])  # (b n_tokens vocab)


def accuracy(model: CopyModel, X: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(X), batch):
            correct += (model(X[i : i + batch]).argmax(-1) == y[i : i + batch]).sum().item()
    model.train()
    return correct / y.numel()


def train(name: str, cfg: argparse.Namespace, device: torch.device, seed: int) -> dict:
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    task = dict(seq_len=cfg.seq_len, n_tokens=cfg.n_tokens, vocab_size=cfg.vocab)
    X_test, y_test = (torch.from_numpy(a).to(device) for a in make_selective_copying(cfg.n_test, **task, random_state=gen))
    model = CopyModel(name, cfg.vocab, cfg.n_tokens, cfg.d_model, cfg.n_layers, cfg.d_state).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    curve, start = [], time.perf_counter()
    for step in range(1, cfg.steps + 1):
        X, y = (torch.from_numpy(a).to(device) for a in make_selective_copying(cfg.batch, **task, random_state=gen))
        loss = nn.functional.cross_entropy(model(X).reshape(-1, cfg.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            curve.append((step, accuracy(model, X_test[:512], y_test[:512])))
            print(f"  {name:6s} step {step:5d}  loss {loss.item():.3f}  acc {curve[-1][1]:.3f}", flush=True)
    return dict(
        name=name, accuracy=accuracy(model, X_test, y_test), curve=curve,
        seconds=time.perf_counter() - start, params=describe(model.backbone).n_params,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Selective copying: Mamba vs S4D")
    ap.add_argument("--fast", action="store_true", help="seconds-long smoke run (also SCIAMBA_FAST=1)")
    ap.add_argument("--paper", action="store_true", help="the paper's sizes: L=4096, 16 tokens (GPU)")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--n-tokens", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=16)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--n-layers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--outdir", default=".")
    cfg = ap.parse_args(argv)
    if cfg.fast or os.environ.get("SCIAMBA_FAST", "") not in ("", "0"):
        cfg.seq_len, cfg.n_tokens, cfg.vocab, cfg.d_model = 32, 4, 8, 32
        cfg.steps, cfg.batch, cfg.lr, cfg.n_test, cfg.eval_every = 60, 32, 1e-2, 256, 30
    elif cfg.paper:
        cfg.seq_len, cfg.n_tokens, cfg.vocab = 4096, 16, 16
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"selective copying: L={cfg.seq_len}, {cfg.n_tokens} tokens, vocab {cfg.vocab}, "
          f"d_model {cfg.d_model}, {cfg.n_layers} layers, {cfg.steps} steps of batch {cfg.batch}, on {device}")

    results = [train(name, cfg, device, cfg.seed) for name in ("mamba", "s4d")]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(cfg.outdir, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        steps, acc = zip(*r["curve"])
        ax.plot(steps, acc, marker="o", ms=3, label=f"{r['name']} ({r['accuracy']:.1%})")
    ax.axhline(1 / cfg.vocab, color="gray", ls=":", label="chance")
    ax.set(xlabel="training step", ylabel="held-out token accuracy", ylim=(0, 1.02),
           title=f"selective copying, L={cfg.seq_len}, {cfg.n_tokens} tokens")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(cfg.outdir, "selective_copying.png"), dpi=120)

    lines = [
        f"L = {cfg.seq_len}, {cfg.n_tokens} tokens to copy, vocabulary {cfg.vocab}, d_model {cfg.d_model}, "
        f"{cfg.n_layers} layers, d_state {cfg.d_state}, {cfg.steps} steps of batch {cfg.batch}, "
        f"lr {cfg.lr}, seed {cfg.seed}, {device}; accuracy on {cfg.n_test} held-out sequences.",
        "",
        "| model | parameters | accuracy | train time s | paper (L=4096, 16 tokens) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['name']} | {r['params']:,} | {r['accuracy']:.1%} | {r['seconds']:.0f} | "
                     f"{PAPER[r['name']]:.1f}% |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(cfg.outdir, "selective_copying.md"), "w") as fh:
        fh.write(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
