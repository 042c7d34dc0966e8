"""Model-FLOPs utilisation: achieved model FLOP/s over the devices' peak (PaLM, Chowdhery et al. 2022, appendix B).

MFU counts the FLOPs the model needs (a path's hook reports ``model_flops_per_example``: the LM path's is
6·N + 12·L·H·Q·T per token, ``spiking.measure.model_flops_per_token``), not what the program executes, so
rematerialisation, padding and dropped experts do not raise it. The runner is path-agnostic: it reads that number
from the final evaluation's metrics, multiplies by examples per second and divides by ``devices × peak``.

Peaks are dense (no 2:4 sparsity) tensor-core / MXU figures per chip, from the vendors' datasheets (below). A float32
model on an NVIDIA GPU is priced at the TF32 tensor-core peak (XLA's default precision for float32 matmuls there);
on a TPU at the bfloat16 peak (the default precision runs float32 matmuls as bfloat16 passes). On a CPU, or a
device not in the table, the peak is measured: a large float32 matmul's FLOP/s in this process, and the summary
says so (``mfu_peak_source``).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

# (substring of jax's device_kind, lower case) -> {dtype: peak FLOP/s per chip}; first match wins, so the more
# specific names come first.
PEAK_FLOPS: list[tuple[str, dict[str, float]]] = [
    # NVIDIA H100 datasheet (SXM5 / PCIe), 2023: dense BF16/FP16 989.4 / 756 TFLOPS, TF32 494.7 / 378 TFLOPS
    ("h100 pcie", {"bfloat16": 756e12, "float16": 756e12, "float32": 378e12}),
    ("h100", {"bfloat16": 989.4e12, "float16": 989.4e12, "float32": 494.7e12}),
    # NVIDIA H200 datasheet, 2024 (SXM): the H100 SXM's tensor cores, more memory
    ("h200", {"bfloat16": 989.4e12, "float16": 989.4e12, "float32": 494.7e12}),
    # NVIDIA DGX B200 datasheet, 2024: 72 PFLOPS FP8 / 36 PFLOPS FP16 / 18 PFLOPS TF32 sparse for 8 GPUs
    ("b200", {"bfloat16": 2.25e15, "float16": 2.25e15, "float32": 1.125e15}),
    # NVIDIA A100 datasheet, 2021: BF16/FP16 312 TFLOPS, TF32 156 TFLOPS (dense)
    ("a100", {"bfloat16": 312e12, "float16": 312e12, "float32": 156e12}),
    # NVIDIA L4 datasheet, 2023: FP16/BF16 121 TFLOPS, TF32 60 TFLOPS (dense; half the sparse figures)
    ("l4", {"bfloat16": 121e12, "float16": 121e12, "float32": 60e12}),
    # NVIDIA V100 datasheet (SXM2): 125 TFLOPS FP16 tensor, 15.7 TFLOPS FP32; no bfloat16
    ("v100", {"float16": 125e12, "float32": 15.7e12}),
    # Google Cloud TPU system architecture pages (cloud.google.com/tpu/docs/v6e, v5p, v5e, v4, v3): BF16 per chip
    ("tpu v6", {"bfloat16": 918e12, "float32": 918e12}),
    ("tpu v5p", {"bfloat16": 459e12, "float32": 459e12}),
    ("tpu v5 lite", {"bfloat16": 197e12, "float32": 197e12}),
    ("tpu v5e", {"bfloat16": 197e12, "float32": 197e12}),
    ("tpu v5", {"bfloat16": 459e12, "float32": 459e12}),
    ("tpu v4", {"bfloat16": 275e12, "float32": 275e12}),
    ("tpu v3", {"bfloat16": 123e12, "float32": 123e12}),
]

_MEASURED: dict[str, float] = {}


def table_peak(device_kind: str, dtype: str) -> tuple[float, str] | None:
    """``(peak FLOP/s per chip, source)`` of ``device_kind`` computing in ``dtype`` from ``PEAK_FLOPS``, or None."""
    kind = device_kind.lower()
    for pattern, peaks in PEAK_FLOPS:
        if pattern in kind:
            if dtype not in peaks:
                return None
            return peaks[dtype], f"table: {device_kind} {dtype} datasheet peak (dense)"
    return None


def measured_peak(size: int = 2048, repeats: int = 3) -> float:
    """FLOP/s of a ``[size, size] @ [size, size]`` float32 matmul on the default device (best of ``repeats``,
    after a warm-up; 2·size³ FLOPs), measured once per process."""
    key = f"{jax.devices()[0].device_kind}/{size}"
    if key not in _MEASURED:
        a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
        mm = jax.jit(lambda x: x @ x)
        jax.block_until_ready(mm(a))
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(mm(a))
            best = min(best, time.perf_counter() - t0)
        _MEASURED[key] = 2.0 * size**3 / best
    return _MEASURED[key]


def peak_flops(device, dtype: str = "float32") -> tuple[float, str]:
    """``(peak FLOP/s of one device, how it was obtained)``: the table's for a known GPU or TPU, else measured."""
    found = table_peak(device.device_kind, dtype) if device.platform != "cpu" else None
    if found is not None:
        return found
    return measured_peak(), f"measured: float32 2048^3 matmul on this {device.platform} ({device.device_kind})"


def mfu_summary(examples_per_s: float | None, final: dict, n_devices: int, device, dtype: str) -> dict:
    """The summary's throughput fields when the final metrics carry ``model_flops_per_example`` (and
    ``tokens_per_example``): ``tokens_per_s``, ``model_flops_per_token``, ``model_flops_per_s``, ``mfu``,
    ``mfu_peak_flops_per_device`` and ``mfu_peak_source``; {} otherwise."""
    per_example = final.get("model_flops_per_example")
    if not per_example or not examples_per_s:
        return {}
    tokens = final.get("tokens_per_example")
    peak, source = peak_flops(device, dtype)
    achieved = examples_per_s * per_example
    out = {"model_flops_per_s": achieved, "mfu": achieved / (n_devices * peak), "mfu_peak_flops_per_device": peak,
           "mfu_peak_source": source, "mfu_devices": n_devices}
    if tokens:
        out.update(tokens_per_s=examples_per_s * tokens, model_flops_per_token=per_example / tokens)
    return out
