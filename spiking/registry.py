"""Registers the spiking path with the experiment runner: the ``text`` and ``tokens`` tasks, three LMs, the hooks.

* task ``text``: byte-level language modelling (``spiking.data``) on the embedded ``pydoc_data.topics`` corpus or
  any UTF-8 file (``data.path``); metrics loss (nats), bits_per_char (= loss / ln 2, per byte), perplexity (per
  byte, mean over evaluation batches) and next-byte accuracy; bits_per_byte (= bits_per_char here).
* task ``tokens``: token files written by ``python -m experiments prepare-data`` (bytes or BPE), read through
  ``np.memmap``, each process reading its share of every global batch on the host (``experiments.TokenReader``);
  bits per byte = Σ nll / ln 2 ÷ the UTF-8 bytes the scored tokens stand for, so byte-level and BPE runs compare
  on one axis; every model reads the vocabulary from the task (``spec["vocab_size"]``).
* models ``spiking_lm`` (SpikingLM), ``spiking_lm_twin`` (the same network with every spiking neuron replaced by a
  continuous activation) and ``dense_lm`` (DenseLM), from ``spiking.lm``.
* ``ffn = "moe"`` (every LM): mixture-of-experts MLPs (``spiking.moe``); the text task's loss adds the layers'
  auxiliary losses (balance and router z-loss, as weighted in the model config) to the cross-entropy, and the
  hook ``moe_routing`` reports per-expert load, load entropy / log E, max / mean load, the dropped fraction, and
  total and active parameters per token at every evaluation ({} for a dense-FFN model).
* model ``distill`` (``spiking.distill``): a student LM (``student`` = "dense_lm" | "spiking_lm" |
  "spiking_lm_twin" with that model's fields) trained with ``kd_loss`` against the finished run ``teacher`` (a run
  directory, restored by ``experiments.load_run`` and frozen); hook ``distill``: teacher and student bits/char on
  the evaluation batches, the share of the teacher's quality kept, (H_unigram − bpc_student) / (H_unigram −
  bpc_teacher), and both models' inference time per token measured in this process (plus the student's energy).
* hook ``spiking_energy`` (declared by all three models): op and energy accounting from the spike tensors measured
  on the evaluation batches (``spiking.energy``): per-layer firing rates, MACs and ACs per token, energy per
  token under the published convention, the strict count at the model's precision (45 nm and Loihi), the strict
  count with memory traffic (SRAM, DRAM; bytes per token, memory's share) and the matched dense model's MACs,
  with the ratios to the dense figure — so each run's ``summary.json`` carries them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import platform
from typing import Literal

import jax
import jax.numpy as jnp
import optax
from flax import nnx

import experiments
from experiments import ConfigError, Task, register_hook, register_model, register_task
from spiking import data as text_data
from spiking.distill import DIRECTIONS, Distill
from spiking.layers import REMATS, TWIN_ACTIVATIONS
from spiking.lm import DenseLM, SpikingLM
from spiking.measure import (  # noqa: F401
    active_params,
    measure_distill,
    measure_energy,
    measure_routing,
    model_flops_per_token,
)
from spiking.moe import MoEFeedForward, MoEStats
from spiking.neurons import NEURONS
from spiking.surrogates import SURROGATES


@dataclasses.dataclass
class TextConfig:
    """``path``: a UTF-8 text file, or "" for an embedded ``corpus``: ``pydoc`` (pydoc_data.topics, about 466k bytes)
    or ``stdlib`` (the standard library's own source, about 12 MB: a corpus that does not run out)."""

    path: str = ""
    corpus: Literal["pydoc", "stdlib"] = "pydoc"
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
class LMConfig:
    """Width, depth, heads, MLP ratio; ``ffn = "moe"``: every MLP becomes ``experts`` MLPs of the same shape, of
    which ``top_k`` run per token (``capacity_factor <= 0``: dropless); ``balance``: the Switch balance loss
    (``balance_weight``), the aux-loss-free bias (``bias_rate``) or none; ``z_loss_weight``: ST-MoE's z-loss.
    ``dtype``: the compute type (parameters, optimizer state, norms, softmax, router and loss stay float32).
    ``token_shift``: Q/K/V and the MLP read half their input's channels from the previous token.
    ``remat``: "none", "block" (each block recomputed in the backward pass, only its input kept) or a
    ``jax.checkpoint_policies`` name (``spiking.layers.REMATS``); the blocks then run under one ``lax.scan``."""

    width: int = 128
    depth: int = 2
    heads: int = 4
    mlp_ratio: int = 4
    ffn: Literal["dense", "moe"] = "dense"
    experts: int = 8
    top_k: int = 2
    capacity_factor: float = 1.25
    balance: Literal["loss", "bias", "none"] = "loss"
    balance_weight: float = 1e-2
    z_loss_weight: float = 1e-3
    bias_rate: float = 1e-3
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    token_shift: bool = False  # RWKV-2's token shift on what Q/K/V and the MLP read (spiking.lm.token_shift)
    remat: Literal[REMATS] = "none"  # "block", or a jax.checkpoint_policies name: recompute in the backward pass

    def __post_init__(self):
        if self.width < 1 or self.depth < 1 or self.heads < 1 or self.width % self.heads:
            raise ValueError(f"width: {self.width} with heads={self.heads}, depth={self.depth} is not allowed; "
                             "width, depth, heads >= 1 and width divisible by heads")
        if self.mlp_ratio < 1:
            raise ValueError(f"mlp_ratio: {self.mlp_ratio} is not allowed; use an integer >= 1")
        if self.experts < 1:
            raise ValueError(f"experts: {self.experts} is not allowed; use an integer >= 1")
        if not 1 <= self.top_k <= self.experts:
            raise ValueError(f"top_k: {self.top_k} is not allowed; use 1 <= top_k <= experts ({self.experts})")
        for name in ("balance_weight", "z_loss_weight", "bias_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: {getattr(self, name)} is not allowed; use a value >= 0")


@dataclasses.dataclass
class DenseLMConfig(LMConfig):
    """``LMConfig`` + ``attention``: the ``jax.nn.dot_product_attention`` implementation ("cudnn": GPU, 16-bit)."""

    attention: Literal["xla", "cudnn"] = "xla"

    def __post_init__(self):
        super().__post_init__()
        if self.attention == "cudnn" and (jax.default_backend() != "gpu" or self.dtype == "float32"):
            raise ValueError(f"attention: 'cudnn' is not allowed with dtype {self.dtype} on the "
                             f"{jax.default_backend()} backend; cuDNN attention needs a GPU and dtype bfloat16 or "
                             "float16 (use 'xla')")


@dataclasses.dataclass
class SpikingLMConfig(LMConfig):
    timesteps: int = 4
    spike_placement: Literal["pre", "post"] = "pre"  # "pre": spikes feed every Linear; "post": after each (SpikeGPT)
    neuron: Literal[tuple(NEURONS)] = "lif"
    surrogate: Literal[tuple(sorted(SURROGATES))] = "atan"
    beta: float = 0.5
    threshold: float = 1.0
    twin_activation: Literal[tuple(TWIN_ACTIVATIONS)] = "sigmoid"  # the twin's replacement for every neuron

    def __post_init__(self):
        super().__post_init__()
        if self.timesteps < 1:
            raise ValueError(f"timesteps: {self.timesteps} is not allowed; use an integer >= 1")
        if not 0.0 < self.beta < 1.0:
            raise ValueError(f"beta: {self.beta} is not allowed; use 0 < beta < 1")


def has_moe(model) -> bool:
    """Whether ``model`` holds a ``MoEFeedForward`` (a static fact of its structure)."""
    return any(isinstance(m, MoEFeedForward) for _, m in nnx.iter_modules(model))


def _sown(stats) -> dict[str, list]:
    """``{name: [value per sow, over all layers]}`` from a captured ``MoEStats`` state."""
    out: dict[str, list] = {}
    for path, v in nnx.to_flat_state(stats):
        out.setdefault(path[-1], []).extend(v.get_value())
    return out


def lm_loss(model, batch, key, train, *, per_row=None):
    """Next-token cross-entropy (+ the mixture-of-experts layers' weighted auxiliary losses, when there are any);
    for a ``Distill`` model the objective is its student's ``kd_loss`` against the teacher instead.

    ``batch["tokens"] [B, L + 1]`` (optionally ``"weights" [B, L]``: which targets count, and ``"bytes" [B]``: the
    UTF-8 bytes they stand for); returns (objective, metrics) as scalars; the metric ``loss`` is the (student's)
    cross-entropy in nats per token, so bits_per_char always means the same thing.

    ``per_row`` (token files, ``tokens_task``): ``{train: (tokens, bytes)}`` per row of the split, so
    ``bits_per_byte = Σ nll / ln 2 / (B · bytes per row)``: averaged over the evaluation batches (weighted by their
    rows, as the runner does) it is exactly the summed bits over the summed bytes of the evaluation windows. Without
    it (byte-level text) a token is a byte and bits_per_byte = bits_per_char."""
    del key
    inputs, targets = batch["tokens"][:, :-1], batch["tokens"][:, 1:]
    lm = model.student if isinstance(model, Distill) else model
    if has_moe(lm):
        logits, stats = nnx.capture(lm, MoEStats)(inputs)
    else:
        logits, stats = lm(inputs), nnx.State({})
    logits = logits.astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    w = batch.get("weights", jnp.ones_like(nll))
    loss = (nll * w).sum() / w.sum()
    acc = ((jnp.argmax(logits, -1) == targets) * w).sum() / w.sum()
    metrics = {"loss": loss, "bits_per_char": loss / math.log(2.0), "perplexity": jnp.exp(loss), "accuracy": acc,
               "bits_per_byte": loss / math.log(2.0)}
    if per_row is not None:
        tokens, nbytes = per_row[bool(train)]
        rows = nll.shape[0]
        metrics["loss"] = (nll * w).sum() / (rows * tokens)
        metrics["bits_per_byte"] = metrics["bits_per_char"] = (nll * w).sum() / math.log(2.0) / (rows * nbytes)
        metrics["bits_per_token"] = metrics["loss"] / math.log(2.0)
        metrics["perplexity"] = jnp.exp(metrics["loss"])
        if "bytes" in batch:
            metrics["bytes"], metrics["tokens"] = batch["bytes"].sum(), w.sum()
    objective = loss
    if isinstance(model, Distill):
        objective = metrics["kd_loss"] = model.loss(inputs, targets, logits)
    sown = _sown(stats)
    if not sown:
        return objective, metrics
    aux = sum(sown["aux_loss"])
    metrics.update(aux_loss=aux, balance_loss=jnp.mean(jnp.stack(sown["balance_loss"])),
                   z_loss=jnp.mean(jnp.stack(sown["z_loss"])), dropped=jnp.mean(jnp.stack(sown["dropped"])))
    return objective + aux, metrics


def _sample(train_data, key, batch_size, *, seq_len):
    return {"tokens": text_data.sample_windows(train_data["tokens"], key, batch_size, seq_len)}


@register_task("text", config=TextConfig, doc="byte-level LM on pydoc_data.topics or a UTF-8 file (data.path)")
def text_task(cfg: TextConfig, *, key) -> Task:
    del key  # the split and the evaluation windows are deterministic
    try:
        corpus = text_data.load_corpus(cfg.path, cfg.corpus)
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
        facts={"corpus": cfg.path or cfg.corpus, "bytes": len(corpus), "train_bytes": len(train),
               "val_bytes": len(val), "python": platform.python_version()},
    )


@dataclasses.dataclass
class TokensConfig:
    """``dir``: a folder ``python -m experiments prepare-data`` wrote (read when the run is built, so a config
    naming one validates without it); ``eval_split``: "val" or "test"; ``eval_tokens``: tokens of that split
    scored at every evaluation (0 = all of it: then a byte-level and a BPE run score the same bytes)."""

    dir: str = ""
    seq_len: int = 256
    eval_split: Literal["val", "test"] = "val"
    eval_tokens: int = 1 << 20

    def __post_init__(self):
        if not self.dir:
            raise ValueError("dir: '' is not allowed; give a folder written by `python -m experiments prepare-data`")
        if self.seq_len < 2:
            raise ValueError(f"seq_len: {self.seq_len} is not allowed; use an integer >= 2")
        if self.eval_tokens < 0:
            raise ValueError(f"eval_tokens: {self.eval_tokens} is not allowed; use >= 0 (0 = the whole split)")


@register_task("tokens", config=TokensConfig,
               doc="LM on token files from prepare-data (np.memmap, host-fed batches; bits per byte for any tokenizer)")
def tokens_task(cfg: TokensConfig, *, key) -> Task:
    """Training windows drawn on the host from ``train.bin`` (``experiments.TokenReader``: each process reads only
    its rows of the global batch, from ``(seed, step)``); evaluation windows score the first ``eval_tokens`` of
    ``eval_split`` once each. Metrics: loss (nats per token), bits_per_token, bits_per_byte (also reported as
    bits_per_char, per byte as the text task's), perplexity (per token), accuracy, and at evaluation the summed
    ``bytes`` and ``tokens`` scored."""
    files = experiments.TokenDir(cfg.dir)
    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    reader = experiments.TokenReader(files, "train", cfg.seq_len, seed)
    before = {"val": "train", "test": "val"}[cfg.eval_split]  # the split whose last token is the first context
    evals = experiments.eval_windows(files.split(cfg.eval_split), int(files.split(before)[-1]), cfg.seq_len,
                                     files.token_bytes, cfg.eval_tokens)
    rows = len(evals["tokens"])
    train_bytes_per_token = files.meta["bytes"]["train"] / max(1, files.meta["tokens"]["train"])
    per_row = {True: (cfg.seq_len, cfg.seq_len * train_bytes_per_token),
               False: (float(evals["weights"].sum()) / rows, float(evals["bytes"].sum()) / rows)}
    return Task(
        name="tokens",
        train_data={},
        eval_data=evals,
        loss=functools.partial(lm_loss, per_row=per_row),
        spec={"vocab_size": files.vocab_size, "seq_len": cfg.seq_len, "tokenizer": files.meta["tokenizer"],
              "eval_bytes": float(evals["bytes"].sum()), "eval_tokens": float(evals["weights"].sum())},
        examples_per_epoch=max(1, reader.n_tokens // cfg.seq_len),
        counts=("bytes", "tokens"),
        host_batch=reader,
    )


def _seq_len(task) -> int:
    return int(task.spec.get("seq_len", 128)) if task is not None else 128


def _vocab(task) -> int:
    return int(task.spec.get("vocab_size", text_data.VOCAB_SIZE)) if task is not None else text_data.VOCAB_SIZE


def _build(cls, **kw):
    try:
        return cls(**kw)
    except ValueError as e:
        raise ConfigError(f"model.{e}") from None


@register_model("spiking_lm", config=SpikingLMConfig, hooks=("spiking_energy", "moe_routing", "lm_flops"),
                doc="causal spiking transformer LM (Spikformer attention; T, placement, neuron, surrogate)")
def spiking_lm(cfg: SpikingLMConfig, *, task, rngs):
    return _build(SpikingLM, rngs=rngs, seq_len=_seq_len(task), vocab=_vocab(task), spiking=True,
                  **dataclasses.asdict(cfg))


@register_model("spiking_lm_twin", config=SpikingLMConfig, hooks=("spiking_energy", "moe_routing", "lm_flops"),
                doc="SpikingLM with every spiking neuron replaced by a continuous activation (the spike tax)")
def spiking_lm_twin(cfg: SpikingLMConfig, *, task, rngs):
    return _build(SpikingLM, rngs=rngs, seq_len=_seq_len(task), vocab=_vocab(task), spiking=False,
                  **dataclasses.asdict(cfg))


@register_model("dense_lm", config=DenseLMConfig, hooks=("spiking_energy", "moe_routing", "lm_flops"),
                doc="pre-LayerNorm causal transformer LM (jax.nn.dot_product_attention), matched to spiking_lm")
def dense_lm(cfg: DenseLMConfig, *, task, rngs):
    return _build(DenseLM, rngs=rngs, seq_len=_seq_len(task), vocab=_vocab(task), **dataclasses.asdict(cfg))


@register_hook("spiking_energy", doc="firing rates, MACs/ACs, energy per token (published, strict at precision, "
               "with SRAM / DRAM traffic, dense)")
def spiking_energy(ctx) -> dict[str, float]:
    return measure_energy(ctx.model, ctx.eval_batches)


@register_hook("moe_routing", doc="mixture-of-experts load per expert, load entropy, max load, drops, params")
def moe_routing(ctx) -> dict[str, float]:
    return measure_routing(ctx.model, ctx.eval_batches)


@register_hook("lm_flops", doc="model FLOPs per training token and example (PaLM's 6N + 12LHQT), for MFU")
def lm_flops(ctx) -> dict[str, float]:
    seq = _seq_len(ctx.task)
    per_token = model_flops_per_token(ctx.model, seq)
    return {"model_flops_per_token": per_token, "model_flops_per_example": per_token * seq,
            "tokens_per_example": float(seq)}


@dataclasses.dataclass
class DistillConfig(SpikingLMConfig):
    """The student's fields (those of ``student``'s config; the others are ignored), the teacher's run directory,
    and ``kd_loss``'s ``alpha``, ``temperature`` and ``direction``."""

    teacher: str = ""
    student: Literal["dense_lm", "spiking_lm", "spiking_lm_twin"] = "dense_lm"
    attention: Literal["xla", "cudnn"] = "xla"
    alpha: float = 0.5
    temperature: float = 2.0
    direction: Literal[DIRECTIONS] = "forward"

    def __post_init__(self):
        super().__post_init__()
        if not self.teacher:
            raise ValueError("teacher: '' is not allowed; give the directory of a finished LM run")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha: {self.alpha} is not allowed; use 0 <= alpha <= 1")
        if not self.temperature > 0:
            raise ValueError(f"temperature: {self.temperature} is not allowed; use a value > 0")
        if self.student == "dense_lm":
            self.student_config()  # the dense student's own checks (attention)

    def student_config(self):
        cls = DenseLMConfig if self.student == "dense_lm" else SpikingLMConfig
        return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})


@register_model("distill", config=DistillConfig, hooks=("distill",),
                doc="a student LM trained by kd_loss against a finished run's frozen LM (model.teacher)")
def distill(cfg: DistillConfig, *, task, rngs):
    teacher, _ = experiments.load_run(cfg.teacher, key="model.teacher")
    student = _STUDENTS[cfg.student](cfg.student_config(), task=task, rngs=rngs)
    return Distill(student, experiments.frozen(teacher), alpha=cfg.alpha, temperature=cfg.temperature,
                   direction=cfg.direction)


_STUDENTS = {"dense_lm": dense_lm, "spiking_lm": spiking_lm, "spiking_lm_twin": spiking_lm_twin}


@register_hook("distill", doc="teacher quality kept over unigram, student/teacher inference time, student energy")
def distill_hook(ctx) -> dict[str, float]:
    out = measure_distill(ctx.model, ctx.eval_batches, float(ctx.task.spec["unigram_bits"]))
    out.update(measure_energy(ctx.model.student, ctx.eval_batches))
    out.update(measure_routing(ctx.model.student, ctx.eval_batches))
    return out


from spiking import post  # noqa: F401  (registers the post-training transforms prune and quantize)
