"""The ``tokens`` task on the LM path: every LM takes its vocabulary from the task, and the gpu configs' headers give
the parameter counts of the models they build (counted under ``nnx.eval_shape``, no memory allocated)."""

import re
from pathlib import Path

import jax
import pytest
from flax import nnx

from experiments import Task, get, load_config, prepare_data, run, sweeps

GPU = sorted((Path(__file__).parents[2] / "experiments" / "configs" / "gpu").glob("*.toml"))
HEADER_VOCAB = {"spikegpt_enwik8.toml": 256, "lm_124m.toml": 32768}  # the vocabulary each header counts at


def _params(config, vocab: int) -> int:
    task = Task("tokens", {}, {}, loss=None, spec={"vocab_size": vocab, "seq_len": config.data.cfg.seq_len})
    entry = get("model", config.model.name)
    model = nnx.eval_shape(lambda: entry.factory(config.model.cfg, task=task, rngs=nnx.Rngs(0)))
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize("path", GPU, ids=lambda p: p.name)
def test_gpu_config_headers_give_the_parameter_counts_of_their_models(path):
    header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    stated = {int(m.replace(",", "")) for m in re.findall(r"\d{1,3}(?:,\d{3}){2,}", header)}
    for name, config in sweeps.plan(path):
        n = _params(config, HEADER_VOCAB[path.name])
        assert n in stated, f"{path.name} run {name}: {n:,} parameters, not in the header"


def test_a_spiking_lm_on_bpe_token_files_reads_the_vocabulary_from_the_task(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("".join(f"line {i} of spikes and tokens, {i % 7} times\n" for i in range(800)))
    meta = prepare_data([text], "bpe:280", tmp_path / "bpe", quiet=True)
    config = load_config(Path(__file__).parents[2] / "experiments" / "configs" / "gpu" / "spikegpt_enwik8.toml", [
        f"data.dir={tmp_path / 'bpe'}", "data.seq_len=16", "sweep={}", "model.name=spiking_lm", "model.width=16",
        "model.depth=1", "model.heads=2", "model.dtype=float32", "model.timesteps=2", "train.steps=4",
        "train.batch_size=4", "train.eval_every=0", "train.checkpoint_every=0", "train.steps_per_call=2",
        "train.log_every=2"])
    result = run(config, tmp_path / "run", quiet=True)
    final = result.summary["final"]
    assert final["bytes"] == meta["bytes"]["val"] and final["tokens"] == meta["tokens"]["val"]
    assert 0 < final["bits_per_byte"] < final["bits_per_token"]  # a BPE token stands for more than one byte
    assert result.summary["param_count"] == _params(config, meta["vocab_size"])
