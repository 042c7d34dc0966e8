"""spiking.prune: Wanda's mask against NumPy, SparseGPT < Wanda < magnitude in layer-output error on correlated
inputs, exact n:m patterns and sparsities, and prune_lm on tiny LMs (block Linears only, sequential, no mutation)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from spiking import prune
from spiking.calibration import calibration_stats, get_path
from spiking.lm import DenseLM, SpikingLM, block_linears

OUT, IN = 16, 80  # 80 inputs: 50–90% of a row and 2:4 / 1:4 groups are whole numbers of weights


@pytest.fixture(scope="module")
def layer():
    """W [OUT, IN] and calibration inputs X [N, IN] with correlated features of unequal scales."""
    rng = np.random.default_rng(0)
    mix = np.eye(IN) + 0.4 * rng.normal(size=(IN, IN))
    X = (rng.normal(size=(2048, IN)) @ mix) * np.exp(rng.normal(size=IN))
    W = rng.normal(size=(OUT, IN))
    return W.astype(np.float32), X.astype(np.float32)


def _prune(method, W, X, sparsity, pattern=None, **kw):
    H = X.T.astype(np.float64) @ X
    if method == "magnitude":
        return prune.magnitude(W, sparsity, pattern=pattern)
    if method == "wanda":
        return prune.wanda(W, np.sqrt(np.diag(H)), sparsity, pattern=pattern)
    return prune.sparsegpt(W, H, sparsity, pattern=pattern, block_size=40, **kw)  # two column blocks


def _numpy_wanda_mask(W, norms, sparsity=None, pattern=None):
    score = np.abs(W) * norms[None, :]
    keep = np.ones(W.shape, bool)
    if pattern is None:
        k = round(sparsity * W.shape[1])
        order = np.argsort(score, axis=1, kind="stable")[:, :k]
        np.put_along_axis(keep, order, False, axis=1)
        return keep
    n, m = pattern
    for j in range(0, W.shape[1], m):
        order = np.argsort(score[:, j:j + m], axis=1, kind="stable")[:, :m - n]
        np.put_along_axis(keep[:, j:j + m], order, False, axis=1)
    return keep


@pytest.mark.parametrize("sparsity,pattern", [(0.5, None), (0.7, None), (None, (2, 4))])
def test_wanda_mask_equals_numpy_reference(layer, sparsity, pattern):
    W, X = layer
    norms = np.linalg.norm(X, axis=0)
    W_p, mask = prune.wanda(W, norms, sparsity, pattern=pattern)
    ref = _numpy_wanda_mask(W, norms, sparsity, pattern)
    np.testing.assert_array_equal(np.asarray(mask), ref)
    np.testing.assert_array_equal(np.asarray(W_p), np.where(ref, W, 0.0))
    # the score is per row: one row's threshold ignores the others (a global threshold would not)
    assert (np.asarray(mask).sum(1) == mask.shape[1] - round((sparsity or 0.5) * IN)).all()


@pytest.mark.parametrize("sparsity,pattern", [(0.5, None), (None, (2, 4))])
def test_layer_output_error_sparsegpt_below_wanda_below_magnitude(layer, sparsity, pattern):
    W, X = layer
    err = {m: float(np.linalg.norm(X @ W.T - X @ np.asarray(_prune(m, W, X, sparsity, pattern)[0]).T))
           for m in prune.METHODS}
    assert err["sparsegpt"] < err["wanda"] < err["magnitude"], err


@pytest.mark.parametrize("method,pattern", [(m, (2, 4)) for m in prune.METHODS] + [("wanda", (1, 4))])
def test_nm_pattern_holds_exactly(layer, method, pattern):
    W, X = layer
    n, m = pattern
    W_p, mask = _prune(method, W, X, None, pattern)
    mask, W_p = np.asarray(mask), np.asarray(W_p)
    assert (mask.reshape(OUT, IN // m, m).sum(-1) == n).all()
    assert (W_p[~mask] == 0).all() and (W_p[mask] != 0).all()


@pytest.mark.parametrize("sparsity", [0.5, 0.6, 0.7, 0.8, 0.9])
@pytest.mark.parametrize("method", prune.METHODS)
def test_measured_sparsity_equals_requested(layer, method, sparsity):
    W, X = layer
    W_p, mask = _prune(method, W, X, sparsity)
    assert float(np.mean(np.asarray(W_p) == 0)) == pytest.approx(sparsity, abs=1e-12)
    assert float(np.mean(~np.asarray(mask))) == pytest.approx(sparsity, abs=1e-12)


def _numpy_sparsegpt(W, H, sparsity, pattern, block_size, damp=0.01):
    """A float64 NumPy transcription of SparseGPT's reference ``fasterprune`` (IST-DASLab/sparsegpt, sparsegpt.py),
    with its ``<= threshold`` replaced by an exact count (a stable sort), as ``spiking.prune`` documents."""
    W, H = W.astype(np.float64).copy(), H.astype(np.float64).copy()
    cols = W.shape[1]
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    H += damp * np.mean(np.diag(H)) * np.eye(cols)
    Hinv = np.linalg.cholesky(np.linalg.inv(H)).T
    pruned = np.zeros(W.shape, bool)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        W1, Hinv1 = W[:, i1:i2].copy(), Hinv[i1:i2, i1:i2]
        Q1, Err1, mask1 = np.zeros_like(W1), np.zeros_like(W1), np.zeros(W1.shape, bool)
        alive1, d1 = ~dead[i1:i2], np.diag(Hinv1)
        if pattern is None:
            score = np.where(alive1, W1, 0) ** 2 / d1[None] ** 2
            mask1.ravel()[np.argsort(score.ravel(), kind="stable")[:round(sparsity * W1.size)]] = True
        for i in range(i2 - i1):
            if pattern is not None and i % pattern[1] == 0:
                g = slice(i, i + pattern[1])
                score = np.where(alive1[g], W1[:, g], 0) ** 2 / d1[g][None] ** 2
                order = np.argsort(score, axis=1, kind="stable")[:, :pattern[1] - pattern[0]]
                np.put_along_axis(mask1[:, g], order, True, axis=1)
            w = W1[:, i]
            q = np.where(mask1[:, i], 0.0, w)
            Q1[:, i], Err1[:, i] = q, (w - q) / Hinv1[i, i]
            W1[:, i:] -= np.outer(Err1[:, i], Hinv1[i, i:])
        W[:, i1:i2], pruned[:, i1:i2] = Q1, mask1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W, ~pruned


@pytest.mark.parametrize("sparsity,pattern", [(0.6, None), (None, (2, 4))])
def test_sparsegpt_equals_a_numpy_transcription_of_the_reference_code(layer, sparsity, pattern):
    W, X = layer
    X = X.copy()
    X[:, 5] = 0.0  # one dead input
    W_ref, keep_ref = _numpy_sparsegpt(W, X.T.astype(np.float64) @ X, sparsity, pattern, 40)
    W_p, keep = _prune("sparsegpt", W, X, sparsity, pattern)
    np.testing.assert_array_equal(np.asarray(keep), keep_ref)
    np.testing.assert_allclose(np.asarray(W_p), W_ref, atol=1e-4 * np.abs(W_ref).max())


def test_sparsegpt_updates_kept_weights_and_handles_dead_inputs(layer):
    W, X = layer
    X = X.copy()
    X[:, :3] = 0.0  # three inputs never active (a neuron that never spiked)
    W_p, mask = _prune("sparsegpt", W, X, 0.5)
    W_p, mask = np.asarray(W_p), np.asarray(mask)
    assert np.isfinite(W_p).all()
    assert not np.allclose(W_p[mask], W[mask])  # error feedback moved the kept weights
    assert not mask[:, :3].any()  # score 0: pruned first


def test_bad_arguments_raise_one_line_errors(layer):
    W, _ = layer
    with pytest.raises(ValueError, match="sparsity: 1.0 is not allowed"):
        prune.magnitude(W, 1.0)
    with pytest.raises(ValueError, match="sparsity: 0.7 is not allowed with pattern 2:4"):
        prune.magnitude(W, 0.7, pattern=(2, 4))
    with pytest.raises(ValueError, match="pattern: 2:3 is not allowed for 80 input columns"):
        prune.wanda(W, np.ones(IN), None, pattern=(2, 3))
    with pytest.raises(ValueError, match="act_norms: shape"):
        prune.wanda(W, np.ones(IN + 1), 0.5)
    with pytest.raises(ValueError, match="pattern: '3:2' is not allowed"):
        prune.parse_pattern("3:2")
    assert prune.parse_pattern("2:4") == (2, 4) and prune.parse_pattern("") is None


# ------------------------------------------------------------------------------------------- whole LMs

TINY = {"width": 32, "depth": 2, "heads": 2, "seq_len": 16, "mlp_ratio": 1}  # one Linear shape: fewer compiles


def _models():
    return {"dense": DenseLM(**TINY, rngs=nnx.Rngs(0)),
            "spiking": SpikingLM(**TINY, timesteps=2, rngs=nnx.Rngs(0))}


def _batches():
    return [jax.random.randint(jax.random.key(i), (4, TINY["seq_len"]), 0, 256) for i in range(2)]


def _flat(model):
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(nnx.state(model))}


@pytest.mark.parametrize("kind,method,pattern", [("dense", "sparsegpt", None), ("spiking", "sparsegpt", (2, 4))])
def test_prune_lm_prunes_only_block_linears_and_leaves_the_model(kind, method, pattern):
    model = _models()[kind]
    before = _flat(model)
    pruned, layers = prune.prune_lm(model, _batches(), method=method, sparsity=0.5, pattern=pattern)
    assert _flat(model).keys() == before.keys()
    assert all(np.array_equal(v, before[k]) for k, v in _flat(model).items())  # the input model is untouched
    after = _flat(pruned)
    assert after.keys() == before.keys()  # the Taps are gone again
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    kernels = {k for k in before if k.startswith("['blocks']") and "['kernel']" in k}
    assert changed == kernels  # embeddings, head, norms and biases unchanged
    assert sorted(layers) == sorted(f"blocks.{i}.{n}" for i in range(2) for n in ("wq", "wk", "wv", "wo", "w1", "w2"))
    assert all(v == 0.5 for v in layers.values())
    for k in kernels:
        assert float(np.mean(after[k] == 0)) == 0.5
    info = pruned.post_info["prune"]
    assert (info["method"], info["sparsity"], info["measured"]) == (method, 0.5, 0.5)
    assert info["pattern"] == ("" if pattern is None else "2:4")
    logits = nnx.jit(lambda m, t: m(t))(pruned, _batches()[0])
    assert np.isfinite(np.asarray(logits)).all()
    assert hash(pruned.post_info)  # hashable, so post_info never makes the graph definition unhashable


def test_prune_lm_calibrates_each_block_on_the_already_pruned_ones():
    model = _models()["dense"]
    batches = _batches()
    pruned, _ = prune.prune_lm(model, batches, method="wanda", sparsity=0.5)
    block1 = [p for p in block_linears(model) if p[1] == 1]
    norms = lambda stats, p: jnp.sqrt(jnp.diag(stats[p]["gram"]))
    half = nnx.clone(model)  # block 0 pruned as prune_lm pruned it, block 1 still dense
    half.blocks[0] = nnx.clone(pruned.blocks[0])
    seq, orig = calibration_stats(half, batches, block1), calibration_stats(model, batches, block1)
    differs = False
    for p in block1:
        W = get_path(model, p).kernel[...].T
        got = get_path(pruned, p).kernel[...].T != 0
        np.testing.assert_array_equal(got, prune.wanda(W, norms(seq, p), 0.5)[1])
        differs |= bool((got != prune.wanda(W, norms(orig, p), 0.5)[1]).any())
    assert differs  # calibrating block 1 on the unpruned block 0 would have chosen other weights


def test_prune_transform_is_registered_and_checks_its_config():
    from experiments.runner import get
    from spiking.post import PruneConfig

    entry = get("transform", "prune")
    assert entry.config is PruneConfig
    for bad, msg in (({"method": "obs"}, "method: 'obs' is not allowed"),
                     ({"sparsity": 1.5}, "sparsity: 1.5 is not allowed"),
                     ({"pattern": "2:4", "sparsity": 0.7}, "sparsity: 0.7 is not allowed with pattern '2:4'"),
                     ({"pattern": "24"}, "pattern: '24' is not allowed"),
                     ({"calib_batches": 0}, "calib_batches: 0 is not allowed")):
        with pytest.raises(ValueError, match=msg):
            PruneConfig(**bad)
    task = get("task", "text").factory(get("task", "text").config(seq_len=16, eval_windows=4), key=jax.random.key(0))
    model = _models()["dense"]
    cfg = dataclasses.replace(PruneConfig(method="wanda", pattern="2:4"), calib_batches=2, calib_batch_size=4)
    pruned = entry.factory(cfg, model, task, key=jax.random.key(0))
    assert pruned is not model and pruned.post_info["prune"]["measured"] == 0.5
