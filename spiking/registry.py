"""Registers the spiking path with the experiment runner: the ``text`` task, three LMs and the energy hook.

* task ``text``: byte-level language modelling (``spiking.data``) on the embedded ``pydoc_data.topics`` corpus or
  any UTF-8 file (``data.path``); metrics loss (nats), bits_per_char (= loss / ln 2, per byte), perplexity (per
  byte, mean over evaluation batches) and next-byte accuracy.
* models ``spiking_lm`` (SpikingLM), ``spiking_lm_twin`` (the same network with every spiking neuron replaced by a
  continuous activation) and ``dense_lm`` (DenseLM), from ``spiking.lm``.
* hook ``spiking_energy`` (declared by all three models): op and energy accounting from the spike tensors measured
  on the evaluation batches (``spiking.energy``): per-layer firing rates, MACs and ACs per token, energy per
  token under the published convention, the strict count (45 nm and Loihi) and the matched dense model's MACs,
  with the ratios to the dense figure — so each run's ``summary.json`` carries them.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments.errors import ConfigError
from experiments.registry import register_hook, register_model, register_task
from experiments.task import Task
from spiking import data as text_data
from spiking import energy
from spiking.layers import TWIN_ACTIVATIONS
from spiking.lm import PLACEMENTS, DenseLM, SpikingLM
from spiking.neurons import NEURONS
from spiking.surrogates import SURROGATES


@dataclasses.dataclass
class TextConfig:
    """``path``: a UTF-8 text file, or "" for the embedded pydoc_data.topics corpus (about 466k bytes)."""

    path: str = ""
    seq_len: int = 128
    val_fraction: float = 0.1
    eval_windows: int = 128  # evaluation windows of the validation split (0 = all of it)

    def __post_init__(self):
        if self.seq_len < 2:
            raise ValueError(f"seq_len: {self.seq_len} is not allowed; use an integer >= 2")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: {self.val_fraction} is not allowed; use 0 < val_fraction < 1")
        if self.eval_windows < 0:
            raise ValueError(f"eval_windows: {self.eval_windows} is not allowed; use >= 0 (0 = all)")


@dataclasses.dataclass
class DenseLMConfig:
    width: int = 128
    depth: int = 2
    heads: int = 4
    mlp_ratio: int = 4

    def __post_init__(self):
        if self.width < 1 or self.depth < 1 or self.heads < 1 or self.width % self.heads:
            raise ValueError(f"width: {self.width} with heads={self.heads}, depth={self.depth} is not allowed; "
                             "width, depth, heads >= 1 and width divisible by heads")


@dataclasses.dataclass
class SpikingLMConfig(DenseLMConfig):
    timesteps: int = 4
    spike_placement: str = "pre"  # "pre": spikes feed every Linear; "post": a spike after each Linear (SpikeGPT)
    neuron: str = "lif"
    surrogate: str = "atan"
    beta: float = 0.5
    threshold: float = 1.0
    twin_activation: str = "sigmoid"  # the twin's continuous replacement for every spiking neuron

    def __post_init__(self):
        super().__post_init__()
        choices = {"spike_placement": PLACEMENTS, "neuron": sorted(NEURONS), "surrogate": sorted(SURROGATES),
                   "twin_activation": sorted(TWIN_ACTIVATIONS)}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: {getattr(self, name)!r} is not allowed; use one of {list(allowed)}")
        if self.timesteps < 1:
            raise ValueError(f"timesteps: {self.timesteps} is not allowed; use an integer >= 1")
        if not 0.0 < self.beta < 1.0:
            raise ValueError(f"beta: {self.beta} is not allowed; use 0 < beta < 1")


def lm_loss(model, batch, key, train):
    """Next-byte cross-entropy. ``batch["tokens"] [B, L + 1]``; returns (loss, metrics) as scalars."""
    del key, train
    tokens = batch["tokens"]
    logits = model(tokens[:, :-1]).astype(jnp.float32)
    targets = tokens[:, 1:]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
    acc = (jnp.argmax(logits, -1) == targets).mean()
    return loss, {"loss": loss, "bits_per_char": loss / math.log(2.0), "perplexity": jnp.exp(loss), "accuracy": acc}


def _sample(train_data, key, batch_size, *, seq_len):
    return {"tokens": text_data.sample_windows(train_data["tokens"], key, batch_size, seq_len)}


@register_task("text", config=TextConfig, doc="byte-level LM on pydoc_data.topics or a UTF-8 file (data.path)")
def text_task(cfg: TextConfig, *, key) -> Task:
    del key  # the split and the evaluation windows are deterministic
    try:
        corpus = text_data.load_corpus(cfg.path)
        train, val = text_data.split(corpus, cfg.val_fraction)
        evals = text_data.eval_windows(val, cfg.seq_len, cfg.eval_windows)
    except ValueError as e:
        raise ConfigError(f"data.{e}") from None
    if len(train) < cfg.seq_len + 1:
        raise ConfigError(f"data.seq_len: {cfg.seq_len} is longer than the training split ({len(train)} bytes)")
    return Task(
        name="text",
        train_data={"tokens": jnp.asarray(train, jnp.uint8)},
        eval_data={"tokens": evals},
        loss=lm_loss,
        sample=functools.partial(_sample, seq_len=cfg.seq_len),
        spec={"vocab_size": text_data.VOCAB_SIZE, "seq_len": cfg.seq_len,
              "unigram_bits": text_data.unigram_entropy(train)},
        examples_per_epoch=max(1, len(train) // cfg.seq_len),
        target_metric=("bits_per_char", "min"),
    )


def _seq_len(task) -> int:
    return int(task.spec.get("seq_len", 128)) if task is not None else 128


def _build(cls, **kw):
    try:
        return cls(**kw)
    except ValueError as e:
        raise ConfigError(f"model.{e}") from None


@register_model("spiking_lm", config=SpikingLMConfig, hooks=("spiking_energy",),
                doc="causal spiking transformer LM (Spikformer attention; T, placement, neuron, surrogate)")
def spiking_lm(cfg: SpikingLMConfig, *, task, rngs):
    return _build(SpikingLM, rngs=rngs, seq_len=_seq_len(task), spiking=True, **dataclasses.asdict(cfg))


@register_model("spiking_lm_twin", config=SpikingLMConfig, hooks=("spiking_energy",),
                doc="SpikingLM with every spiking neuron replaced by a continuous activation (the spike tax)")
def spiking_lm_twin(cfg: SpikingLMConfig, *, task, rngs):
    return _build(SpikingLM, rngs=rngs, seq_len=_seq_len(task), spiking=False, **dataclasses.asdict(cfg))


@register_model("dense_lm", config=DenseLMConfig, hooks=("spiking_energy",),
                doc="pre-LayerNorm causal transformer LM (jax.nn.dot_product_attention), matched to spiking_lm")
def dense_lm(cfg: DenseLMConfig, *, task, rngs):
    return _build(DenseLM, rngs=rngs, seq_len=_seq_len(task), **dataclasses.asdict(cfg))


@functools.partial(jax.jit, static_argnums=0)
def _sites(graphdef, state, tokens):
    return energy.capture_sites(nnx.merge(graphdef, state), tokens)


def measure_energy(model, batches) -> dict[str, float]:
    """Run the accounting of ``spiking.energy`` for ``model`` over ``batches`` (``{"tokens": [B, L + 1]}``).

    Returns per-token figures (picojoules), per-layer firing rates and the ratios to the matched dense model
    (``energy.dense_lm_macs`` of the same width, depth, heads, MLP ratio and evaluated sequence length).
    """
    graphdef, state = nnx.split(model)
    total, tokens, length = None, 0, None
    for batch in batches:
        toks = jnp.asarray(batch["tokens"])[:, :-1]
        total = energy.add_sites(total, jax.device_get(_sites(graphdef, state, toks)))
        tokens += toks.shape[0] * toks.shape[1]
        length = toks.shape[1]
    if total is None:
        return {}
    dense = energy.dense_lm_macs(model.width, model.depth, length, heads=model.heads, mlp_ratio=model.mlp_ratio,
                                 vocab=model.vocab)
    out = energy.account(total, tokens, dense_macs_per_token=dense)
    out["timesteps"] = float(getattr(model, "timesteps", 1))
    return {k: float(np.asarray(v)) for k, v in out.items()}


@register_hook("spiking_energy", doc="firing rates, MACs/ACs and energy per token under three accountings")
def spiking_energy(ctx) -> dict[str, float]:
    return measure_energy(ctx.model, ctx.eval_batches)
from spiking import post  # noqa: F401  (registers the post-training transforms prune and quantize)
