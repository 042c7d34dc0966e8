"""A circuit's expectations on a PennyLane device (``default.qubit``, ``lightning.qubit``, …), callable from JAX.

For users who want PennyLane's own execution rather than the JAX simulator (``quantum_opt.simulator``). The quantum
function runs in PennyLane's NumPy/autograd interface, which works with every jax (its JAX interface needs
``jax.core`` internals that jax 0.11 removed). JAX reaches it through ``jax.pure_callback`` with concrete NumPy
arrays, so no tracer enters PennyLane; the gradient is PennyLane's own (``diff_method``: backprop on
``default.qubit``, adjoint on ``lightning.qubit``, ``best`` elsewhere), supplied by a ``jax.custom_vjp`` whose
backward pass is a second callback returning the vector-Jacobian product in params and inputs. It works under
``jit``, ``grad`` and ``vmap`` (one device execution per example, in sequence) on the host; forward mode
(``jacfwd``) and the state Jacobian of the metric are the simulator's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["expval_fn", "load_device"]


def load_device(name: str, n_qubits: int):
    """``qml.device(name, wires=n_qubits)``, or one ValueError line saying why not and what to use."""
    try:
        import pennylane as qml

        return qml.device(name, wires=n_qubits)
    except Exception as err:  # noqa: BLE001 - a missing plugin, a bad name, a missing PennyLane: one line each
        why = (str(err).splitlines() or [type(err).__name__])[0][:120]
        raise ValueError(f"device: {name!r} cannot run here ({why}); use device='simulator' (the JAX simulator, the "
                         "default) or an installed PennyLane device such as 'default.qubit' or 'lightning.qubit'"
                         ) from None


def expval_fn(qfunc: Callable, wires: Sequence, device: str, diff_method: str, measure: Callable,
              out_shape: tuple) -> Callable:
    """``f(params, inputs) -> [*out_shape]``: ``measure()`` after ``qfunc(params, wires, inputs)`` on ``device``.

    ``inputs`` of size 0 stands for None (the circuit without inputs). Differentiable in both arguments.
    """
    import pennylane as qml
    from pennylane import numpy as pnp

    wires = list(wires)
    dev = load_device(device, len(wires))

    @qml.qnode(dev, interface="autograd", diff_method=diff_method)
    def qnode(params, inputs):
        qfunc(params, wires, None if inputs.size == 0 else inputs)
        return measure()

    def stacked(params, inputs):
        out = qnode(params, inputs)
        return qml.math.stack(out) if isinstance(out, (list, tuple)) else out

    def value(params, inputs):
        out = stacked(pnp.array(np.asarray(params, np.float64), requires_grad=False), np.asarray(inputs, np.float64))
        return np.asarray(out, np.float64).reshape(out_shape).astype(params.dtype)

    def vjp(params, inputs, cotangent):
        p = pnp.array(np.asarray(params, np.float64), requires_grad=True)
        if inputs.size == 0:
            jp = qml.jacobian(lambda q: stacked(q, np.zeros(0)))(p)
            jx = np.zeros(out_shape + (0,))
        else:
            x = pnp.array(np.asarray(inputs, np.float64), requires_grad=True)
            jp, jx = qml.jacobian(stacked, argnums=[0, 1])(p, x)
        ct = np.asarray(cotangent, np.float64)
        gp = np.tensordot(ct, np.asarray(jp).reshape(out_shape + params.shape), axes=ct.ndim)
        gx = np.tensordot(ct, np.asarray(jx).reshape(out_shape + inputs.shape), axes=ct.ndim)
        return gp.astype(params.dtype), gx.astype(inputs.dtype)

    @jax.custom_vjp
    def f(params, inputs):
        spec = jax.ShapeDtypeStruct(out_shape, params.dtype)
        return jax.pure_callback(value, spec, params, inputs, vmap_method="sequential")

    def fwd(params, inputs):
        return f(params, inputs), (params, inputs)

    def bwd(res, cotangent):
        params, inputs = res
        specs = (jax.ShapeDtypeStruct(params.shape, params.dtype), jax.ShapeDtypeStruct(inputs.shape, inputs.dtype))
        return tuple(jax.pure_callback(vjp, specs, params, inputs, cotangent, vmap_method="sequential"))

    f.defvjp(fwd, bwd)

    def call(params, inputs=None):
        params = jnp.asarray(params)
        inputs = jnp.zeros((0,), params.dtype) if inputs is None else jnp.asarray(inputs)
        return f(params, inputs)

    return call
