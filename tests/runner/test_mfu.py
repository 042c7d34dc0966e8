"""Throughput accounting: PaLM's model FLOPs per token for the LMs, the peak table, and an LM run's summary
(tokens/s, model FLOPs per token, MFU against the measured CPU matmul, said so)."""

import jax
import pytest
from flax import nnx

import experiments
from experiments.runner.mfu import mfu_summary, peak_flops, table_peak
from spiking.lm import DenseLM, SpikingLM
from spiking.measure import model_flops_per_token


def test_flops_per_token_is_palms_formula():
    d, depth, seq, vocab = 32, 2, 16, 256
    model = DenseLM(width=d, depth=depth, heads=4, seq_len=seq, rngs=nnx.Rngs(0))
    block = 4 * (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 2 * 2 * d  # Q K V O, MLP, two LayerNorms
    n = depth * block + 2 * d + (d * vocab + vocab)  # blocks, final LayerNorm, head (embeddings are gathers)
    assert model_flops_per_token(model, seq) == 6 * n + 12 * depth * d * seq
    spiking = SpikingLM(width=d, depth=depth, heads=4, seq_len=seq, timesteps=4, rngs=nnx.Rngs(0))
    twin = SpikingLM(width=d, depth=depth, heads=4, seq_len=seq, timesteps=4, spiking=False, rngs=nnx.Rngs(0))
    head = d * vocab + vocab
    assert model_flops_per_token(spiking, seq) - 6 * head == pytest.approx(4 * (model_flops_per_token(twin, seq)
                                                                                 - 6 * head))


@pytest.mark.parametrize("kind, dtype, peak", [
    ("NVIDIA H100 80GB HBM3", "bfloat16", 989.4e12), ("NVIDIA H100 PCIe", "bfloat16", 756e12),
    ("NVIDIA A100-SXM4-40GB", "float32", 156e12), ("TPU v5 lite", "bfloat16", 197e12), ("TPU v4", "float32", 275e12),
])
def test_peak_table(kind, dtype, peak):
    assert table_peak(kind, dtype)[0] == peak


def test_cpu_peak_is_measured_and_mfu_is_the_ratio():
    peak, source = peak_flops(jax.devices()[0])
    assert source.startswith("measured") and peak > 1e8
    out = mfu_summary(10.0, {"model_flops_per_example": 2e9, "tokens_per_example": 100.0}, 2, jax.devices()[0],
                      "float32")
    assert out["tokens_per_s"] == 1000.0 and out["model_flops_per_token"] == 2e7
    assert out["mfu"] == pytest.approx(10.0 * 2e9 / (2 * peak))
    assert mfu_summary(10.0, {}, 1, jax.devices()[0], "float32") == {}  # a path that reports no model FLOPs


def test_lm_run_summary_records_mfu(tmp_path):
    config = experiments.from_dict({"data": {"name": "text", "seq_len": 16},
                                    "model": {"name": "dense_lm", "width": 32, "depth": 1, "heads": 4},
                                    "train": {"steps": 6, "batch_size": 8, "eval_every": 0, "max_eval_batches": 1,
                                              "eval_batch_size": 8}})
    s = experiments.run(config, tmp_path / "run", quiet=True).summary
    assert s["mesh/data"] == 1 and s["mfu_devices"] == 1
    assert s["model_flops_per_token"] == s["final"]["model_flops_per_token"] > 0
    assert s["tokens_per_s"] == pytest.approx(s["examples_per_s"] * 16)
    assert 0 < s["mfu"] < 2 and s["mfu_peak_source"].startswith("measured: float32 2048^3 matmul")
