"""How selective a trained model's Spikformer attention is: why a twin can lose to its spiking LM.

Spikformer attention has no softmax: query ``i`` takes ``Σ_{j≤i} (q_i·k_j) v_j``, so its weights over the prefix are
``w_ij = q_i·k_j / Σ_{j'≤i} q_i·k_j'`` (every ``q``, ``k`` is >= 0 for spikes and for the sigmoid twin; a signed
activation such as GELU's is measured on ``|q_i·k_j|``). With sparse binary spikes a dot product counts coincidences
and varies a lot between keys; with dense activations of similar size (a sigmoid's) every key scores about the same
and attention becomes a running mean of the prefix.
``probe`` measures that on validation windows of the run's own corpus: per block, the mean normalised entropy of
``w_i·`` (1: a uniform average over the prefix; 0: one key), the coefficient of variation of the scores over keys,
and the mean of ``q`` and ``k``. Queries whose scores are all zero (no coincident spike) are counted apart.

    python -m spiking.attention_probe RUN_DIR [RUN_DIR ...]      # finished spiking_lm / spiking_lm_twin runs
"""

from __future__ import annotations

import argparse
import sys

import jax.numpy as jnp
import numpy as np

from spiking import lm as lm_module
from spiking.data import load_corpus, split


def prefix_weights(q: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(|scores| [..., L, L] masked causally, row sums [..., L])`` of ``q, k [..., L, d]``."""
    length = q.shape[-2]
    scores = np.abs(np.einsum("...id,...jd->...ij", q, k)) * np.tril(np.ones((length, length)))
    return scores, scores.sum(-1)


def selectivity(q: np.ndarray, k: np.ndarray) -> dict:
    """Normalised entropy and score variation over the prefix, averaged over every query from position 2 on."""
    scores, sums = prefix_weights(np.asarray(q, np.float64), np.asarray(k, np.float64))
    length = scores.shape[-1]
    entropies, variations, silent, total = [], [], 0, 0
    for i in range(1, length):
        row, s = scores[..., i, : i + 1], sums[..., i]
        live = s > 0
        total += live.size
        silent += int((~live).sum())
        w = row[live] / s[live][:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(w > 0, w * np.log(w), 0.0).sum(-1) / np.log(i + 1)
        entropies.append(h)
        variations.append(row[live].std(-1) / np.maximum(row[live].mean(-1), 1e-30))
    return {"entropy": float(np.concatenate(entropies).mean()), "score_cv": float(np.concatenate(variations).mean()),
            "silent": silent / max(total, 1), "q_mean": float(np.mean(q)), "k_mean": float(np.mean(k))}


def probe(run_dir, windows: int = 8) -> list[dict]:
    """Per block of the finished run's model, ``selectivity`` on ``windows`` validation windows."""
    from experiments.runner import load_run

    model, config = load_run(run_dir)
    data = config.raw.get("data", {})
    seq_len = int(data.get("seq_len", 128))
    _, val = split(load_corpus(data.get("path", ""), data.get("corpus", "pydoc")), data.get("val_fraction", 0.1))
    starts = np.linspace(0, len(val) - seq_len - 1, windows).astype(int)
    tokens = jnp.asarray(np.stack([val[s: s + seq_len] for s in starts]).astype(np.int32))
    seen = []
    original = lm_module.causal_spiking_attention

    def recording(q, k, v):
        seen.append(selectivity(np.asarray(q), np.asarray(k)))
        return original(q, k, v)

    lm_module.causal_spiking_attention = recording
    try:
        model(tokens)
    finally:
        lm_module.causal_spiking_attention = original
    return seen


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished spiking_lm or spiking_lm_twin run folders")
    parser.add_argument("--windows", type=int, default=8, help="validation windows of the run's seq_len")
    args = parser.parse_args(argv)
    print("run | block | prefix entropy (1 = mean) | score CV over keys | silent queries | mean q | mean k")
    for run in args.runs:
        for i, r in enumerate(probe(run, args.windows)):
            print(f"{run} | {i} | {r['entropy']:.3f} | {r['score_cv']:.3f} | {r['silent']:.3f} | {r['q_mean']:.3f} "
                  f"| {r['k_mean']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
