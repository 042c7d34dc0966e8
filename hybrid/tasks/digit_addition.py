"""N-digit addition over scikit-learn's bundled digit images: neural perception, exact symbolic addition.

The classic neurosymbolic benchmark (MNIST addition of Manhaeve et al., "DeepProbLog", NeurIPS 2018; N-digit
version of van Krieken et al., "A-NeSI", NeurIPS 2023), on the 1,797 bundled 8x8 digits (no download): an example
is two N-digit numbers shown as ``2N`` digit images, labelled only with their sum (``N + 1`` digits). A perception
network classifies each image into a distribution over 0..9, and training maximises the exact probability of the
observed sum. That probability is computed without enumerating the ``10^(2N)`` digit assignments: addition is a
left-to-right carry chain, so ``P(sum)`` is a forward pass over the carry (two states) per digit position,
``O(N * 100)`` -- exact inference for any N (DeepProbLog's generic inference times out at N = 4).

Arrays: ``images [B, 2, N, 8, 8]`` (number, digit position most significant first, pixels),
``sum_digits [B, N + 1]`` (most significant first), ``digits [B, 2, N]`` (the true digits: evaluation only).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# table[x, y, c, s, c'] = 1 iff x + y + c == s + 10 c'  (digits x, y; carry in c; sum digit s; carry out c')
_T = np.zeros((10, 10, 2, 10, 2), np.float32)
for _x in range(10):
    for _y in range(10):
        for _c in range(2):
            _t = _x + _y + _c
            _T[_x, _y, _c, _t % 10, _t // 10] = 1.0
ADD_TABLE = _T


def sum_log_likelihood(log_pa: jax.Array, log_pb: jax.Array, sum_digits: jax.Array) -> jax.Array:
    """Exact ``log P(a + b = sum)`` under independent digit distributions.

    Args:
      log_pa, log_pb: ``[B, N, 10]`` log-probabilities of each digit of the two numbers, most significant first.
      sum_digits: ``[B, N + 1]`` int digits of the sum, most significant first.

    Returns:
      ``[B]`` log-likelihoods. Computed by a scan over digit positions from the least significant one, carrying
      ``log P(lower sum digits match, carry = c)`` for c in {0, 1}.
    """
    table = jnp.asarray(ADD_TABLE)
    pa = jnp.exp(log_pa[:, ::-1])                                   # [B, N, 10], least significant first
    pb = jnp.exp(log_pb[:, ::-1])
    s = sum_digits[:, ::-1]                                          # [B, N + 1]
    n = pa.shape[1]
    # [B, N, c, s, c'] = sum_{x, y} pa[x] pb[y] table[x, y, c, s, c']
    step = jnp.einsum("bnx,bny,xycsd->bncsd", pa, pb, table)
    step = jnp.take_along_axis(step, s[:, :n, None, None, None], axis=3)[:, :, :, 0, :]   # [B, N, c, c']

    def body(log_alpha, m):                                         # log_alpha [B, 2] over carry in
        new = jax.nn.logsumexp(log_alpha[:, :, None] + jnp.log(m + 1e-30), axis=1)
        return new, None

    log_alpha0 = jnp.log(jnp.array([1.0, 1e-30]))[None].repeat(pa.shape[0], 0)
    log_alpha, _ = jax.lax.scan(body, log_alpha0, jnp.moveaxis(step, 1, 0))
    # the most significant sum digit must equal the final carry
    return jnp.take_along_axis(log_alpha, s[:, n:n + 1], axis=1)[:, 0]


def to_number(digits: jax.Array) -> jax.Array:
    """``[..., N]`` digits, most significant first -> ``[...]`` int (exact for N <= 18 in int64, 9 in int32)."""
    n = digits.shape[-1]
    weights = (10 ** np.arange(n - 1, -1, -1)).astype(np.int64 if jax.config.jax_enable_x64 else np.int32)
    return jnp.sum(digits * weights, axis=-1)


def add_digits(a: jax.Array, b: jax.Array) -> jax.Array:
    """Exact symbolic addition digit by digit (any N): ``a, b [B, N]`` -> sum digits ``[B, N + 1]``, MSD first."""
    a, b = a[:, ::-1], b[:, ::-1]

    def body(carry, xy):
        t = xy[0] + xy[1] + carry
        return t // 10, t % 10

    carry, digits = jax.lax.scan(body, jnp.zeros(a.shape[0], a.dtype), (a.T, b.T))
    return jnp.concatenate([carry[:, None], digits.T[:, ::-1]], axis=1)


def load_pool(split: str, test_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits split into disjoint train / test image pools: images ``[M, 8, 8]`` in [0, 1], labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(seed).permutation(len(data.target))
    n_test = round(len(order) * test_fraction)
    idx = order[n_test:] if split == "train" else order[:n_test]
    return (data.images[idx] / 16.0).astype(np.float32), data.target[idx].astype(np.int32)


def sample_examples(pool_images: jax.Array, pool_labels: jax.Array, key: jax.Array, batch_size: int,
                    n_digits: int) -> dict[str, jax.Array]:
    """Draws ``batch_size`` additions of two ``n_digits``-digit numbers from an image pool (pure, jittable)."""
    idx = jax.random.randint(key, (batch_size, 2, n_digits), 0, pool_labels.shape[0])
    digits = pool_labels[idx]
    return {"images": pool_images[idx], "sum_digits": add_digits(digits[:, 0], digits[:, 1]), "digits": digits}


__all__ = [
    "ADD_TABLE",
    "add_digits",
    "load_pool",
    "sample_examples",
    "sum_log_likelihood",
    "to_number",
]
