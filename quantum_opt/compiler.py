"""Record a PennyLane quantum function once and compile it to a pure JAX function on ``quantum_opt.simulator``.

PennyLane stays the circuit language and never sees a tracer. ``record(qfunc, wires, param_shape, input_shape)``
calls the quantum function ONCE, inside ``qml.queuing.AnnotatedQueue``, with placeholder NumPy object arrays in
place of its parameters ``[*param_shape]`` and inputs ``[*input_shape]``: every entry is a symbol ``Expr`` naming its
slot of the flattened array (``("param", k)`` / ``("input", k)``). Arithmetic on symbols builds expression trees
(``θ + w ∘ x`` of the re-uploading ansatz, a template's index arithmetic), so the tape records which slots feed which
gate and how — never values. The tape's operations are then lowered to the simulator's gate set:

- a gate of ``simulator.GATES`` (RX, RY, RZ, Rot, PhaseShift, CRX/CRY/CRZ, Ising XX/YY/ZZ, MultiRZ, …) with a
  symbolic angle stays a parametrised gate, its angles evaluated from the slots at run time;
- an operation on at most 3 wires whose parameters are all numbers (Hadamard, CNOT, CZ, SWAP, Toffoli, RX(0.3), a
  constant ``QubitUnitary``) becomes a constant matrix, computed once with ``qml.matrix`` in NumPy (a diagonal one is
  applied as a diagonal);
- anything else (templates such as ``StronglyEntanglingLayers`` or ``AngleEmbedding``) is replaced by its
  ``decomposition()``, recursively, until one of the two holds; an operation with neither gives one ValueError.

The result, a ``Program``, runs as ``program.state(params, inputs) -> (2,)*n`` in pure JAX: jittable, vmappable over
params or inputs, differentiable (``grad``, ``jacfwd``) and under x64 computed in complex128. Consecutive one-qubit
gates on a wire are multiplied into one 2x2 matrix before they touch the state (one pass over it instead of several:
1.7x faster on an 8-qubit hardware-efficient layer here).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from quantum_opt import simulator as S

__all__ = ["Expr", "Program", "record", "symbols"]

_FUNCS: dict[str, Callable] = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv, "pow": operator.pow,
    "neg": operator.neg, "sin": jnp.sin, "cos": jnp.cos, "tan": jnp.tan, "exp": jnp.exp, "log": jnp.log,
    "sqrt": jnp.sqrt, "arcsin": jnp.arcsin, "arccos": jnp.arccos, "arctan": jnp.arctan, "tanh": jnp.tanh,
    "sinh": jnp.sinh, "cosh": jnp.cosh,
}


class Expr:
    """A symbolic scalar: a slot (``("param", k)`` / ``("input", k)``) or an operation on Exprs and numbers.

    NumPy object arrays of Exprs support the arithmetic and the ufuncs (``np.sin`` …) an ansatz applies to its
    parameters; ``evaluate(params_flat, inputs_flat)`` computes the value with ``jnp``."""

    __slots__ = ("args", "op")

    def __init__(self, op: str, *args):
        self.op, self.args = op, args

    def __repr__(self):
        if self.op in ("param", "input"):
            return f"{self.op}[{self.args[0]}]"
        return f"{self.op}({', '.join(map(repr, self.args))})"

    def _bin(name, swap=False):
        return lambda self, other: Expr(name, other, self) if swap else Expr(name, self, other)

    __add__, __radd__ = _bin("add"), _bin("add", True)
    __sub__, __rsub__ = _bin("sub"), _bin("sub", True)
    __mul__, __rmul__ = _bin("mul"), _bin("mul", True)
    __truediv__, __rtruediv__ = _bin("div"), _bin("div", True)
    __pow__, __rpow__ = _bin("pow"), _bin("pow", True)
    del _bin

    def __neg__(self):
        return Expr("neg", self)

    def __pos__(self):
        return self

    def slots(self) -> set[tuple[str, int]]:
        """The slots this expression reads."""
        if self.op in ("param", "input"):
            return {(self.op, self.args[0])}
        return set().union(*(a.slots() for a in self.args if isinstance(a, Expr)))

    def evaluate(self, params, inputs, memo=None):
        """The value from flat ``params [P]`` and ``inputs [D]`` (jnp arrays)."""
        memo = {} if memo is None else memo
        if id(self) in memo:
            return memo[id(self)]
        if self.op == "param":
            value = params[self.args[0]]
        elif self.op == "input":
            value = inputs[self.args[0]]
        else:
            args = [a.evaluate(params, inputs, memo) if isinstance(a, Expr) else a for a in self.args]
            value = _FUNCS[self.op](*args)
        memo[id(self)] = value
        return value


def _unary(name):
    return lambda self: Expr(name, self)


for _name in ("sin", "cos", "tan", "exp", "log", "sqrt", "arcsin", "arccos", "arctan", "tanh", "sinh", "cosh"):
    setattr(Expr, _name, _unary(_name))


def symbols(kind: str, shape: Sequence[int]) -> np.ndarray:
    """A NumPy object array ``[*shape]`` whose entry at flat index k is ``Expr(kind, k)``."""
    out = np.empty(tuple(shape), dtype=object)
    for k, idx in enumerate(np.ndindex(*shape)):
        out[idx] = Expr(kind, k)
    return out


class Program(NamedTuple):
    """A circuit lowered to the simulator: ``ops`` is a tuple of ``("gate", name, wires, angles)`` (angles: Exprs or
    numbers), ``("matrix", wires, U)`` and ``("diagonal", wires, d)`` (NumPy constants), wires as axis indices."""

    n_qubits: int
    ops: tuple
    param_shape: tuple
    input_shape: tuple | None

    def state(self, params, inputs=None):
        """``(2,)*n`` complex: the circuit applied to ``|0…0>`` (params ``[*param_shape]``, inputs
        ``[*input_shape]``)."""
        p = jnp.reshape(jnp.asarray(params), (-1,))
        x = None if inputs is None else jnp.reshape(jnp.asarray(inputs), (-1,))
        state = S.zero_state(self.n_qubits, S.complex_dtype(p, *(() if x is None else (x,))))
        memo, pending = {}, {}  # pending: wire -> the product of its single-qubit gates not yet applied

        def flush(state, wires):
            for w in wires:
                if w in pending:
                    state = S.apply_matrix(state, pending.pop(w), (w,))
            return state

        for op in self.ops:
            wires = op[2] if op[0] == "gate" else op[1]
            if op[0] == "gate":
                values = [a.evaluate(p, x, memo) if isinstance(a, Expr) else a for a in op[3]]
            if len(wires) == 1:  # fused: consecutive one-qubit gates on a wire cost one pass over the state
                if op[0] == "gate":
                    m = S.gate_matrix(op[1], values)
                else:
                    m = op[2] if op[0] == "matrix" else np.diag(op[2])
                m = jnp.asarray(m, state.dtype)
                pending[wires[0]] = m @ pending[wires[0]] if wires[0] in pending else m
                continue
            state = flush(state, wires)
            if op[0] == "gate":
                state = S.apply_gate(state, op[1], values, wires)
            elif op[0] == "matrix":
                state = S.apply_matrix(state, op[2], wires)
            else:
                state = S.apply_diagonal(state, op[2], wires)
        return flush(state, list(pending))

    def slots(self) -> list[tuple[str, tuple[int, ...], set]]:
        """Per parametrised gate: (name, wires, the slots its angles read) — which parameter feeds which gate."""
        return [(op[1], op[2], set().union(*(a.slots() for a in op[3] if isinstance(a, Expr))))
                for op in self.ops if op[0] == "gate"]


def _unwrap(value):
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    return value


def _is_symbolic(value) -> bool:
    if isinstance(value, Expr):
        return True
    return isinstance(value, np.ndarray) and value.dtype == object and any(isinstance(v, Expr) for v in value.flat)


def _lower(op, index: dict, out: list, depth: int = 0) -> None:
    import pennylane as qml

    data = [_unwrap(d) for d in op.data]
    symbolic = any(_is_symbolic(d) for d in data)
    try:
        wires = tuple(index[w] for w in op.wires)
    except KeyError as err:
        raise ValueError(f"ansatz: {op.name} acts on wire {err.args[0]!r}; allowed: the wires {list(index)}") from None
    gate = S.GATES.get(op.name)
    scalars = all(not isinstance(d, np.ndarray) for d in data)
    if symbolic and gate is not None and len(data) == gate.n_params and scalars:
        out.append(("gate", op.name, wires, tuple(data)))
        return
    if not symbolic and len(wires) <= 3 and op.has_matrix:
        m = np.asarray(qml.matrix(op, wire_order=op.wires), complex)
        if np.allclose(m, np.diag(np.diag(m)), atol=0):
            out.append(("diagonal", wires, np.diag(m).copy()))
        else:
            out.append(("matrix", wires, m))
        return
    try:
        parts = op.decomposition()
    except Exception as err:  # noqa: BLE001 - PennyLane raises several types here; all mean "no way to lower"
        allowed = ", ".join(sorted(S.GATES))
        raise ValueError(f"ansatz: {op.name} cannot be compiled to the JAX simulator ({type(err).__name__}); allowed: "
                         f"the gates {allowed}, constant gates on <= 3 wires, or operations that decompose to them "
                         "(or run it on a PennyLane device: device='default.qubit')") from None
    if depth > 64:
        raise ValueError(f"ansatz: {op.name} decomposes more than 64 levels deep; allowed: a finite decomposition")
    for part in parts:
        _lower(part, index, out, depth + 1)


def record(qfunc: Callable, wires: Sequence, param_shape: Sequence[int],
           input_shape: Sequence[int] | None = None) -> Program:
    """Record ``qfunc(params, wires, inputs)`` once with symbolic placeholders and lower it (see the module docstring).

    qfunc: a PennyLane quantum function; its return value (measurements) is ignored. input_shape: None calls it
    with ``inputs=None``.
    """
    import pennylane as qml

    wires = list(wires)
    params = symbols("param", param_shape)
    inputs = None if input_shape is None else symbols("input", input_shape)
    try:
        with qml.queuing.AnnotatedQueue() as queue:
            qfunc(params, wires, inputs)
    except Exception as err:  # whatever the ansatz raised on a symbol: one line saying what works
        why = (str(err).splitlines() or [""])[0][:100]
        raise ValueError(f"ansatz: {getattr(qfunc, '__name__', qfunc)!r} could not be recorded with symbolic parameters "
                         f"({type(err).__name__}: {why}); allowed: gate angles built by arithmetic, indexing and NumPy "
                         "functions (np.sin, ...) of params and inputs") from err
    tape = qml.tape.QuantumScript.from_queue(queue)
    index = {w: i for i, w in enumerate(wires)}
    ops: list = []
    for op in tape.operations:
        _lower(op, index, ops)
    return Program(len(wires), tuple(ops), tuple(param_shape), None if input_shape is None else tuple(input_shape))
