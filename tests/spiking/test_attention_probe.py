"""spiking.attention_probe: the selectivity of softmax-free attention against analytic cases."""

import numpy as np
import pytest

from spiking.attention_probe import selectivity


def test_equal_scores_are_a_uniform_mean_and_one_matching_key_is_a_lookup():
    length, d = 6, 4
    dense = selectivity(np.full((length, d), 0.3), np.full((length, d), 0.3))  # every key scores the same
    assert dense["entropy"] == pytest.approx(1.0) and dense["score_cv"] == pytest.approx(0.0, abs=1e-12)
    assert dense["silent"] == 0.0 and dense["q_mean"] == pytest.approx(0.3)
    eye = np.eye(length, d * 2)                      # query i meets only key i: all weight on itself
    lookup = selectivity(eye, eye)
    assert lookup["entropy"] == pytest.approx(0.0, abs=1e-12)
    # CV of a one-hot row of n entries is sqrt(n - 1); mean over rows i = 1..5 (n = i + 1)
    assert lookup["score_cv"] == pytest.approx(np.mean([np.sqrt(i) for i in range(1, length)]))


def test_queries_without_a_coincidence_are_counted_silent():
    q = np.zeros((2, 5, 3))
    q[0, :, 0] = 1.0                                 # sequence 0 fires, sequence 1 never does
    s = selectivity(q, q)
    assert s["silent"] == pytest.approx(0.5) and s["entropy"] == pytest.approx(1.0)
