"""Knowledge distillation into a small LM (Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural
Network", arXiv:1503.02531).

``kd_loss`` = ``α · T² · KL(p_teacher^T ‖ p_student^T) + (1 − α) · CE(student, labels)``, where ``p^T`` is the
softmax of logits / T; the T² keeps the soft term's gradients on the scale of the hard one as T changes (Hinton §2).
``direction="reverse"`` uses ``KL(p_student^T ‖ p_teacher^T)`` (mode-seeking; Gu et al. 2024, "MiniLLM").
Built on optax's ``softmax_cross_entropy_with_integer_labels`` and ``kl_divergence_with_log_targets``.

``Distill`` holds a student LM and a teacher module; it runs as the student (``model(tokens)`` is the student's
logits), and ``teacher_logits`` runs the teacher in eval mode behind ``jax.lax.stop_gradient``. A teacher restored
from a finished run is wrapped by the runner's ``experiments.frozen`` (its weights become ``Frozen``: not trained,
not checkpointed); an in-memory teacher of ``Param``\\ s gets no gradient either, through the stop-gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

__all__ = ["DIRECTIONS", "Distill", "kd_loss"]

DIRECTIONS = ("forward", "reverse")


def kd_loss(student_logits: jax.Array, teacher_logits: jax.Array, labels: jax.Array, *, alpha: float,
            temperature: float, direction: str = "forward") -> jax.Array:
    """Hinton et al.'s distillation loss, mean over positions.

    Args: ``student_logits, teacher_logits [..., V]``, ``labels [...]`` int; ``alpha`` in [0, 1] (0: plain
    cross-entropy), ``temperature`` > 0, ``direction`` "forward" (KL(teacher ‖ student)) or "reverse".
    The teacher's logits are behind ``stop_gradient``. Returns a float32 scalar.
    """
    student_logits = student_logits.astype(jnp.float32)
    teacher_logits = jax.lax.stop_gradient(teacher_logits.astype(jnp.float32))
    hard = optax.softmax_cross_entropy_with_integer_labels(student_logits, labels)
    log_s = jax.nn.log_softmax(student_logits / temperature, axis=-1)
    log_t = jax.nn.log_softmax(teacher_logits / temperature, axis=-1)
    if direction == "forward":  # KL(p_t ‖ p_s) = Σ p_t (log p_t − log p_s)
        soft = optax.losses.kl_divergence_with_log_targets(log_s, log_t)
    else:  # KL(p_s ‖ p_t)
        soft = optax.losses.kl_divergence_with_log_targets(log_t, log_s)
    return jnp.mean(alpha * temperature ** 2 * soft + (1.0 - alpha) * hard)


class Distill(nnx.Module):
    """A student LM trained against a fixed teacher. ``tokens [B, L]`` -> the student's logits ``[B, L, V]``."""

    def __init__(self, student: nnx.Module, teacher: nnx.Module, *, alpha: float = 0.5, temperature: float = 2.0,
                 direction: str = "forward"):
        self.student, self.teacher = student, teacher
        self.alpha, self.temperature, self.direction = alpha, temperature, direction

    def __call__(self, tokens: jax.Array) -> jax.Array:
        return self.student(tokens)

    def teacher_logits(self, tokens: jax.Array) -> jax.Array:
        """The teacher's logits ``[B, L, V]`` for ``tokens [B, L]``: eval mode, no gradient."""
        self.teacher.eval()  # a training step puts the whole model in train mode; the teacher never trains
        return jax.lax.stop_gradient(self.teacher(tokens))

    def loss(self, tokens: jax.Array, labels: jax.Array, student_logits: jax.Array | None = None) -> jax.Array:
        """``kd_loss`` of the student against the teacher on ``tokens [B, L]`` with next-token ``labels [B, L]``."""
        if student_logits is None:
            student_logits = self.student(tokens)
        return kd_loss(student_logits, self.teacher_logits(tokens), labels, alpha=self.alpha,
                       temperature=self.temperature, direction=self.direction)
