"""Registers the spiking path's post-training transforms with the runner: ``prune`` and ``quantize``.

Glue only (it imports ``experiments``; the cores ``spiking.prune`` and ``spiking.quantize`` do not). Each transform
is ``fn(cfg, model, task, *, key) -> model``: it draws its calibration batches from the training split with
``task.sample(task.train_data, key_i, calib_batch_size)`` (``calib_batches`` of them), feeds their ``tokens[:, :-1]``
(the model's input windows) to the model, and returns a transformed copy; the trained model is not changed.

* ``prune`` (``PruneConfig``): ``spiking.prune.prune_lm``; the copy carries ``post_info["prune"]`` (method,
  sparsity, pattern, measured sparsity overall and per layer).
* ``quantize`` (``QuantizeConfig``): ``spiking.quantize.quantize_lm``; the copy carries ``precision``
  (``{"weights", "activations"}``) and ``post_info["quantize"]``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

from experiments import at_least, register_transform
from spiking.prune import METHODS, parse_pattern, prune_lm
from spiking.quantize import ACTIVATIONS, FORMATS, quantize_lm


@dataclasses.dataclass
class PruneConfig:
    """``pattern``: "" (unstructured) or "n:m" (n of every m consecutive inputs kept; sparsity must be 1 - n/m)."""

    method: Literal["magnitude", "wanda", "sparsegpt"] = "wanda"
    sparsity: float = 0.5
    pattern: str = ""
    calib_batches: int = 8
    calib_batch_size: int = 16

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method: {self.method!r} is not allowed; use one of {list(METHODS)}")
        if isinstance(self.sparsity, bool) or not isinstance(self.sparsity, (int, float)) \
                or not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity: {self.sparsity!r} is not allowed; use 0 <= sparsity < 1")
        nm = parse_pattern(self.pattern)
        if nm is not None and abs(self.sparsity - (1 - nm[0] / nm[1])) > 1e-9:
            raise ValueError(f"sparsity: {self.sparsity} is not allowed with pattern {self.pattern!r}; "
                             f"use {1 - nm[0] / nm[1]:g} (= 1 - n/m)")
        at_least(self, calib_batches=1, calib_batch_size=1)


@dataclasses.dataclass
class QuantizeConfig:
    """``weights``: symmetric per output channel; ``activations``: int8 per tensor from calibration absmax."""

    weights: Literal["int8", "fp8", "int4"] = "int8"
    activations: Literal["none", "int8"] = "none"
    calib_batches: int = 8
    calib_batch_size: int = 16

    def __post_init__(self):
        if self.weights not in FORMATS:
            raise ValueError(f"weights: {self.weights!r} is not allowed; use one of {list(FORMATS)}")
        if self.activations not in ACTIVATIONS:
            raise ValueError(f"activations: {self.activations!r} is not allowed; use one of {list(ACTIVATIONS)}")
        at_least(self, calib_batches=1, calib_batch_size=1)


def calibration_inputs(task, key, batches: int, batch_size: int) -> list[jax.Array]:
    """``batches`` model inputs ``[batch_size, L]`` drawn from ``task.train_data`` (the windows minus their last
    byte, as the text task's loss feeds them)."""
    out = []
    for k in jax.random.split(key, batches):
        batch = task.sample(task.train_data, k, batch_size)
        tokens = batch["tokens"] if isinstance(batch, dict) else batch
        out.append(jnp.asarray(tokens)[:, :-1])
    return out


@register_transform("prune", config=PruneConfig,
                    doc="post-training pruning of the block Linears: magnitude | wanda | sparsegpt, unstructured or n:m")
def prune(cfg: PruneConfig, model, task, *, key):
    batches = [] if cfg.method == "magnitude" else calibration_inputs(task, key, cfg.calib_batches,
                                                                        cfg.calib_batch_size)
    pruned, _ = prune_lm(model, batches, method=cfg.method, sparsity=cfg.sparsity, pattern=parse_pattern(cfg.pattern))
    return pruned


@register_transform("quantize", config=QuantizeConfig,
                    doc="simulated post-training quantisation of the block Linears: int8 | fp8 | int4 weights, int8 inputs")
def quantize(cfg: QuantizeConfig, model, task, *, key):
    batches = [] if cfg.activations == "none" else calibration_inputs(task, key, cfg.calib_batches,
                                                                       cfg.calib_batch_size)
    quantized, _ = quantize_lm(model, batches, weights=cfg.weights, activations=cfg.activations)
    return quantized
