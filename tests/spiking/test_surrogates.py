"""Surrogate spike functions: exact Heaviside forward, snntorch's backward, errors on bad names."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spiking import SURROGATES, resolve_surrogate, spike_fn

torch = pytest.importorskip("torch")
surrogate = pytest.importorskip("snntorch.surrogate")

X = np.concatenate([np.linspace(-2, 2, 401), [0.0, -0.0, 1e-7, -1e-7]]).astype(np.float32)


def _torch_grad(fn, x):
    t = torch.tensor(x, requires_grad=True)
    out = fn(t)
    out.backward(torch.ones_like(t))
    return out.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("ours,theirs", [
    (("atan", {}), surrogate.atan()),
    (("atan", {"alpha": 3.0}), surrogate.atan(alpha=3.0)),
    (("fast_sigmoid", {}), surrogate.fast_sigmoid()),
    (("fast_sigmoid", {"slope": 7.0}), surrogate.fast_sigmoid(slope=7.0)),
    (("superspike", {"beta": 10.0}), surrogate.fast_sigmoid(slope=10.0)),
    (("sigmoid", {}), surrogate.sigmoid()),
    (("snntorch_triangular", {}), surrogate.triangular()),
    (("straight_through", {}), surrogate.straight_through_estimator()),
])
def test_forward_and_backward_equal_snntorch(ours, theirs):
    f = spike_fn(ours[0], **ours[1])
    out_t, grad_t = _torch_grad(theirs, X)
    out = np.asarray(f(jnp.asarray(X)))
    grad = np.asarray(jax.grad(lambda x: jnp.sum(f(x)))(jnp.asarray(X)))
    np.testing.assert_array_equal(out, out_t)
    np.testing.assert_allclose(grad, grad_t, rtol=1e-5, atol=1e-7)


def test_forward_is_strict_heaviside():
    f = spike_fn("atan")
    np.testing.assert_array_equal(np.asarray(f(jnp.array([-1.0, 0.0, 1e-30, 2.0]))), [0.0, 0.0, 1.0, 1.0])


def test_triangle_is_the_piecewise_linear_pseudo_derivative():
    f = spike_fn("triangle", width=0.5)
    g = jax.vmap(jax.grad(f))(jnp.array([-1.0, -0.25, 0.0, 0.25, 0.5, 0.75]))
    np.testing.assert_allclose(np.asarray(g), [0.0, 1.0, 2.0, 1.0, 0.0, 0.0], atol=1e-6)


def test_forward_mode_matches_reverse_mode():
    f = spike_fn("fast_sigmoid")
    x = jnp.asarray(X[:50])
    fwd = jax.jacfwd(lambda x: f(x))(x)
    rev = jax.jacrev(lambda x: f(x))(x)
    np.testing.assert_allclose(np.asarray(fwd), np.asarray(rev), rtol=1e-6)


def test_resolve_forms_and_caching():
    assert resolve_surrogate(None) is spike_fn("atan")
    assert resolve_surrogate("atan") is spike_fn("atan", alpha=2.0) or resolve_surrogate("atan") is spike_fn("atan")
    assert resolve_surrogate({"name": "fast_sigmoid", "slope": 5}) is spike_fn("fast_sigmoid", slope=5.0)
    assert resolve_surrogate(("atan", {"alpha": 4})) is spike_fn("atan", alpha=4)
    custom = lambda x: (x > 0).astype(x.dtype)  # noqa: E731
    assert resolve_surrogate(custom) is custom
    assert set(SURROGATES) >= {"atan", "fast_sigmoid", "triangle", "superspike"}


def test_bad_names_and_params_raise():
    with pytest.raises(ValueError, match="allowed: .*atan.*fast_sigmoid"):
        spike_fn("arctan")
    with pytest.raises(ValueError, match="slope"):
        spike_fn("atan", slope=3.0)
    with pytest.raises(ValueError, match="surrogate="):
        resolve_surrogate(3.5)
