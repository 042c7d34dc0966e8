"""The embedded corpora: the standard library's source as a corpus that does not run out (deterministic order,
tests and site-packages left out, its size recorded with the run), and the text task's facts."""

import sysconfig
from pathlib import Path

import jax
import pytest

from experiments import ConfigError, from_dict, get
from spiking import data as text_data


def test_the_stdlib_corpus_is_the_standard_librarys_source_in_a_fixed_order():
    files = text_data.stdlib_files()
    root = Path(sysconfig.get_paths()["stdlib"])
    rel = [f.relative_to(root).as_posix() for f in files]
    assert rel == sorted(rel) and "os.py" in rel and "json/decoder.py" in rel
    assert not any(part in ("test", "tests", "site-packages") for r in rel for part in r.split("/")[:-1])
    assert not any(r.split("/")[-1].startswith("test_") for r in rel)
    corpus = text_data.load_corpus("", "stdlib")
    assert corpus.size > 15 * text_data.load_corpus().size  # 26x the pydoc text on 3.11, 19x on 3.13
    first = (root / rel[0]).read_bytes()
    assert bytes(corpus[: len(first)]) == first  # the files in that order, one newline between


def test_the_text_task_records_its_corpus():
    cfg = from_dict({"data": {"name": "text", "corpus": "pydoc", "seq_len": 16, "eval_windows": 4},
                     "model": {"name": "dense_lm", "width": 16, "depth": 1, "heads": 2}})
    task = get("task", "text").factory(cfg.data.cfg, key=jax.random.key(0))
    facts = task.facts
    assert facts["corpus"] == "pydoc" and facts["bytes"] == facts["train_bytes"] + facts["val_bytes"]
    assert facts["bytes"] == text_data.load_corpus().size
    with pytest.raises(ConfigError, match="data.corpus: 'wiki' is not allowed"):
        from_dict({"data": {"name": "text", "corpus": "wiki"}, "model": {"name": "dense_lm"}})
