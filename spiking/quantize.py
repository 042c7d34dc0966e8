"""Post-training quantisation, simulated in JAX: int8 / fp8 / int4 weights, int8 activations, around block Linears.

Simulated ("fake") quantisation: a value is quantised and at once dequantised, so the model runs in float32 and
sees exactly the rounding and clipping of the format (Jacob et al. 2018, "Quantization and Training of Neural
Networks for Efficient Integer-Arithmetic-Only Inference", CVPR, §2: ``r = S·q``, symmetric here, zero point 0).

* Weights ``W [out, in]``: symmetric, one scale per output channel, ``S_o = max_i |W_oi| / q_max`` with
  ``q_max`` 127 (int8), 7 (int4) or 448 (the largest finite ``float8_e4m3fn``; Micikevicius et al. 2022, "FP8
  Formats for Deep Learning", arXiv:2209.05433, Table 1). Integers round to nearest and never clip (the scale
  fits the row's largest weight); fp8 casts ``W / S`` to ``jnp.float8_e4m3fn`` (round to nearest even).
  Round-trip bounds per element: ``S/2`` for the integer formats; ``max(2⁻⁴|w|, 2⁻¹⁰ S)`` for e4m3 (3 mantissa
  bits: half an ulp is 2⁻⁴ of the value; subnormals are spaced 2⁻⁹ apart), see ``round_trip_bound``.
* Activations (the input of each block Linear): symmetric int8 with one scale per tensor, ``S = max |x| / 127``
  with ``max |x|`` measured on calibration batches (absmax calibration); inputs beyond it are clipped. A binary
  spike tensor (max 1, so S = 1/127) comes back as itself up to the float rounding of S.

``quantize_lm`` returns a quantised copy of an LM of ``spiking.lm``: the kernels of the block Linears (the same
ones ``spiking.prune`` prunes; never embeddings, head, norms or routers) are replaced by their round trip, and with
``activations="int8"`` each such Linear is wrapped in ``QuantInput``, which fakes the int8 input. Biases stay
float32 (an int32 accumulator would hold them). In an MoE LM the experts (stacked Params, not Linears) and the router
stay float32. Kernel ``[in, out]`` is transposed to ``W [out, in]`` at the
boundary. The copy records ``model.precision = FrozenDict({"weights": "int8" | "fp8" | "int4", "activations":
"none" | "int8"})`` (``"none"``: inputs stay float32; everything outside the block Linears stays float32) and the
same under ``model.post_info["quantize"]``, with each layer's relative weight error.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import jax
import jax.numpy as jnp
from flax import nnx
from flax.core import FrozenDict

from spiking.calibration import calibration_stats, get_path, path_name, set_path, with_post_info
from spiking.lm import block_linears

__all__ = [
    "ACTIVATIONS",
    "FORMATS",
    "QuantInput",
    "fake_quant",
    "quantize_lm",
    "quantize_weights",
    "round_trip_bound",
]

FORMATS = {"int8": 127.0, "int4": 7.0, "fp8": 448.0}  # the largest magnitude each format holds
ACTIVATIONS = ("none", "int8")


def _format(fmt: str) -> float:
    if fmt not in FORMATS:
        raise ValueError(f"weights: {fmt!r} is not allowed; use one of {list(FORMATS)}")
    return FORMATS[fmt]


def fake_quant(x, scale, fmt: str = "int8"):
    """Quantise ``x`` with ``scale`` (broadcast against ``x``) in ``fmt`` and dequantise: ``S · q(x / S)``.

    Integers: ``q = clip(round(x/S), -q_max, q_max)``; fp8: ``x/S`` clipped to ±448 and cast to e4m3fn.
    """
    q_max = _format(fmt)
    scale = jnp.asarray(scale, jnp.float32)
    z = jnp.clip(jnp.asarray(x, jnp.float32) / scale, -q_max, q_max)
    q = z.astype(jnp.float8_e4m3fn).astype(jnp.float32) if fmt == "fp8" else jnp.round(z)
    return q * scale


def _channel_scale(W, q_max):
    amax = jnp.max(jnp.abs(W), axis=1, keepdims=True)
    return jnp.where(amax > 0, amax / q_max, 1.0)


@functools.partial(jax.jit, static_argnames="fmt")
def _quantize_weights(W, fmt):
    scale = _channel_scale(W.astype(jnp.float32), FORMATS[fmt])
    return fake_quant(W, scale, fmt).astype(W.dtype), scale


def quantize_weights(W, fmt: str):
    """Symmetric per-output-channel round trip of ``W [out, in]`` in ``fmt`` ("int8" | "fp8" | "int4").

    Returns ``(W_hat [out, in], scale [out, 1])`` with ``W_hat = scale · q``.
    """
    _format(fmt)
    W = jnp.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"W: shape {W.shape} is not allowed; use a matrix [out, in]")
    return _quantize_weights(W, fmt)


def round_trip_bound(W, fmt: str):
    """The largest ``|W - W_hat|`` the format allows at each element of ``W [out, in]`` (see the module text)."""
    W = jnp.asarray(W, jnp.float32)
    scale = _channel_scale(W, _format(fmt))
    if fmt == "fp8":
        return jnp.maximum(2.0 ** -4 * jnp.abs(W), 2.0 ** -10 * scale)
    return jnp.broadcast_to(scale / 2, W.shape)


class _Scale(nnx.Variable):
    """A calibrated quantisation scale (not a trainable parameter)."""


class QuantInput(nnx.Module):
    """An ``nnx.Linear`` whose input is faked to int8 with one per-tensor scale: ``linear(S · q(x / S))``."""

    def __init__(self, linear: nnx.Linear, scale):
        self.linear = linear
        self.scale = _Scale(jnp.asarray(scale, jnp.float32))

    # read like a Linear by code that inspects one (the energy accounting reads ``kernel`` for the fan-out)
    in_features = property(lambda self: self.linear.in_features)
    out_features = property(lambda self: self.linear.out_features)
    kernel = property(lambda self: self.linear.kernel)
    bias = property(lambda self: self.linear.bias)

    def __call__(self, x):
        return self.linear(fake_quant(x, self.scale[...], "int8").astype(x.dtype))


def quantize_lm(model, calib_batches: Iterable = (), *, weights: str = "int8", activations: str = "none"):
    """A quantised copy of an LM of ``spiking.lm`` and each block Linear's relative weight error.

    Args:
      model: the trained model; not changed.
      calib_batches: model inputs (tokens ``[B, L]``) for the activation scales; needed for ``activations="int8"``.
      weights: "int8" | "fp8" | "int4" (per output channel).
      activations: "none" | "int8" (per tensor, absmax over the calibration batches of the weight-quantised model).
    Returns ``(model_q, {"blocks.0.wq": ‖W - W_hat‖_F / ‖W‖_F, ...})``; ``model_q.precision`` as the module text.
    """
    _format(weights)
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations: {activations!r} is not allowed; use one of {list(ACTIVATIONS)}")
    batches = list(calib_batches)
    if activations != "none" and not batches:
        raise ValueError("calib_batches: none given; int8 activations need calibration inputs")
    out = nnx.clone(model)
    paths = block_linears(out)
    errors = {}
    for p in paths:
        linear = get_path(out, p)
        W = linear.kernel[...].T
        W_hat, _ = quantize_weights(W, weights)
        linear.kernel[...] = W_hat.T.astype(linear.kernel.dtype)
        errors[path_name(p)] = float(jnp.linalg.norm(W - W_hat) / jnp.maximum(jnp.linalg.norm(W), 1e-30))
    if activations == "int8":
        stats = calibration_stats(out, batches, paths)
        for p in paths:
            amax = stats[p]["absmax"]
            set_path(out, p, QuantInput(get_path(out, p), jnp.where(amax > 0, amax / 127.0, 1.0)))
    out.precision = FrozenDict({"weights": weights, "activations": activations})
    with_post_info(out, "quantize", {"weights": weights, "activations": activations, "layers": errors})
    return out, errors
