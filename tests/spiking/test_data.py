"""Byte-level data: deterministic disjoint split, jittable sampler inside the split, bad paths raise."""

import jax
import numpy as np
import pytest

from spiking import data


def test_split_deterministic_and_disjoint():
    corpus = data.load_corpus()
    assert corpus.dtype == np.uint8 and len(corpus) > 400_000
    tr1, va1 = data.split(corpus, 0.1)
    tr2, va2 = data.split(data.load_corpus(), 0.1)
    np.testing.assert_array_equal(tr1, tr2)
    np.testing.assert_array_equal(va1, va2)
    assert len(tr1) + len(va1) == len(corpus)
    np.testing.assert_array_equal(np.concatenate([tr1, va1]), corpus)  # contiguous, non-overlapping ranges
    assert abs(len(va1) / len(corpus) - 0.1) < 1e-3


def test_windows_stay_in_their_split():
    tokens = np.arange(1000) % 251
    train, val = data.split(tokens.astype(np.uint8), 0.2)
    batch = jax.jit(lambda k: data.sample_windows(train, k, 32, 15))(jax.random.key(0))
    assert batch.shape == (32, 16)
    b = np.asarray(batch)
    # every window is a run of consecutive training bytes
    starts = b[:, 0]
    assert np.all((b - starts[:, None]) % 251 == np.arange(16)) and np.all(starts < 800)
    again = data.sample_windows(train, jax.random.key(0), 32, 15)
    np.testing.assert_array_equal(b, np.asarray(again))
    ev = data.eval_windows(val, 15)
    assert ev.shape == ((len(val) - 1) // 15, 16)
    np.testing.assert_array_equal(ev[1, 0], ev[0, -1])  # consecutive windows share one byte
    np.testing.assert_array_equal(ev[0], val[:16])


def test_unigram_entropy_analytic():
    assert data.unigram_entropy(np.array([0, 1, 2, 3] * 10)) == pytest.approx(2.0)
    assert data.unigram_entropy(np.zeros(10, np.uint8)) == pytest.approx(0.0)


def test_file_path_and_bad_paths(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("héllo wörld, this is a test corpus", encoding="utf-8")
    assert bytes(data.load_corpus(str(good))) == good.read_bytes()
    with pytest.raises(ValueError, match="does not exist"):
        data.load_corpus(str(tmp_path / "missing.txt"))
    bad = tmp_path / "b.bin"
    bad.write_bytes(b"\xff\xfe\x00 not utf8 at all, clearly binary \xc3")
    with pytest.raises(ValueError, match="not UTF-8"):
        data.load_corpus(str(bad))
    with pytest.raises(ValueError, match="val_fraction"):
        data.split(np.zeros(100, np.uint8), 1.5)
