"""The claims suite: smoke size end to end through the CLI, verdict rules, and the claims notebook."""

import re

import nbclient
import nbformat
import pytest

from experiments import ConfigError
from experiments.claims import (
    all_claims,
    case_level,
    competence,
    judge,
    load_claim,
    plan,
    publish,
    verdict,
    with_post_rows,
)

from .helpers import REPO, cli


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims")
    proc = cli("claims", "--size", "smoke", "--out", out, "--quiet", timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_smoke_suite_writes_one_section_per_claim_with_a_verdict(smoke):
    text = (smoke / "REPORT.md").read_text()
    claims = all_claims()
    assert len(claims) >= 4
    for claim in claims:
        assert f"## Claim {claim.id}: {claim.title}" in text
        assert claim.source[:40] in text
        overrides = claim.sizes.get("smoke", {}).get("overrides", {})
        for key, value in overrides.items():  # the section says what the size changed in its experiment
            assert f"{key} = {value}" in text.split(f"## Claim {claim.id}: ")[1].split("**Design")[0]
    verdicts = re.findall(r"\*\*Verdict: (supported|not supported|inconclusive|no verdict|not run)\.\*\*", text)
    assert len(verdicts) == len(claims)
    summary = re.findall(r"^\| (\S+): [^|]+ \| ([a-z ]+) \| [^|]+ \|$", text.split("## Method")[0], re.MULTILINE)
    assert summary == [(c.id, v) for c, v in zip(claims, verdicts)]  # the summary table agrees with every section
    assert "## Method" in text and "half-width" in text and "against a distance of" in text
    walls = re.findall(r"Wall of its runs here, tuning included: ([^(]+) \(", text)  # every run records its wall
    assert len(walls) == len(claims) - len([c for c in claims if c.sizes.get("smoke", {}).get("skip")])
    assert "no recorded wall" not in text
    skipped = [c for c in claims if c.sizes.get("smoke", {}).get("skip")]
    assert verdicts.count("not run") == len(skipped) and all(c.sizes["smoke"]["skip"] in text for c in skipped)
    assert "## Hardware and libraries" in text and "jax " in text
    assert re.search(r"!\[[^\]]+\]\([^)]+\.png\)", text)  # plots linked
    for link in re.findall(r"!\[[^\]]+\]\(([^)]+)\)", text):
        assert (smoke / link).exists()


def test_published_report_carries_its_plots(smoke, tmp_path):
    stale = tmp_path / "pub" / "claims_figures" / "gone_claim" / "old.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier report's plot")
    published = publish(smoke / "REPORT.md", tmp_path / "pub")
    links = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", published.read_text())
    assert links and all(link.startswith("claims_figures/") and (tmp_path / "pub" / link).exists() for link in links)
    shown = {tmp_path / "pub" / link for link in links}
    assert set((tmp_path / "pub" / "claims_figures").rglob("*.png")) == shown  # the earlier plot is gone
    assert not stale.parent.exists()


def test_claims_notebook_renders_the_report_and_relaunches_reusing_runs(smoke):
    nb = nbformat.read(REPO / "experiments" / "notebooks" / "claims.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "RUN_SUITE = False" in c.source)
    cell.source = cell.source.replace("RUN_SUITE = False", "RUN_SUITE = True") + f"\nREPORT_DIR = Path({str(smoke)!r})"
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert any("text/markdown" in o.get("data", {}) and "Verdict" in o["data"]["text/markdown"] for o in outputs)
    assert sum("Claim " in o.get("text", "") for o in outputs if o.get("output_type") == "stream") >= 1


def _runs(values_a, values_b, metric="m"):
    runs = [{"variant": "a", "flat": {}, "values": {metric: v}} for v in values_a]
    return runs + [{"variant": "b", "flat": {}, "values": {metric: v}} for v in values_b]


def test_verdict_follows_the_rule_on_the_ci():
    cond = {"a": {"variant": "a"}, "b": {"variant": "b"}, "metric": "m", "compare": "ratio", "op": "<=",
            "threshold": 0.9}
    assert judge(cond, _runs([5, 5.1, 4.9, 5], [10, 10.2, 9.8, 10]))["state"] == "holds"   # ratio 0.5
    assert judge(cond, _runs([10, 10.1, 9.9, 10], [10, 10.2, 9.8, 10]))["state"] == "fails"  # ratio 1.0
    assert judge(cond, _runs([2, 18, 5, 15], [10, 10.2, 9.8, 10]))["state"] == "undecided"  # CI straddles 0.9
    assert judge(cond, _runs([5], [10]))["state"] == "undecided"  # one seed: no interval
    assert judge(cond, _runs([], [10, 11]))["state"] == "missing"
    diff = dict(cond, compare="difference", op=">=", threshold=0.0)
    assert judge(diff, _runs([0.9, 0.91, 0.92], [0.5, 0.52, 0.51]))["state"] == "holds"

    class C:
        cases = [{"name": "x", "conditions": [cond]}, {"name": "y", "conditions": [dict(cond, threshold=0.1)]}]

    assert verdict(C, _runs([5, 5.1, 4.9, 5], [10, 10.2, 9.8, 10]))[0] == "supported"
    assert verdict(C, _runs([10, 10.1, 9.9, 10], [10, 10.2, 9.8, 10]))[0] == "not supported"
    assert verdict(C, _runs([2, 18, 5, 15], [10, 10.2, 9.8, 10]))[0] == "inconclusive"
    assert case_level(C) == pytest.approx(0.975)  # two cases share the 5% (Bonferroni)


def test_an_arm_below_its_competence_floor_gives_no_verdict():
    cond = {"a": {"variant": "a"}, "b": {"variant": "b"}, "metric": "m", "compare": "ratio", "op": "<=",
            "threshold": 0.9}

    class C:
        cases = [{"name": "x", "conditions": [cond]}]
        floors = [{"a": {"variant": "b"}, "metric": "m", "op": "<=", "threshold": 9.0, "why": "zlib"}]

    runs = _runs([5, 5.1, 4.9, 5], [10, 10.2, 9.8, 10])  # a holds against b, but b (mean 10) never reached 9
    assert verdict(C, runs)[0] == "no verdict"
    floor, = competence(C, runs)
    assert floor["mean"] == pytest.approx(10.0) and not floor["met"]
    C.floors = [dict(C.floors[0], threshold=10.5)]
    assert verdict(C, runs)[0] == "supported"


def test_bad_claim_files_and_sizes(tmp_path):
    claim = all_claims()[0]
    with pytest.raises(ConfigError, match="--size: 'huge'"):
        plan(claim, "huge")
    bad = tmp_path / "bad.toml"
    bad.write_text('[claim]\nid = 9\ntitle = "t"\nstatement = "s"\nsource = "s"\nexperiment = "x.toml"\n'
                   '[[claim.cases]]\nconditions = [{ a = { variant = "a" }, metric = "m", compare = "ratio", '
                   'op = "<=", threshold = 1 }]\n')
    with pytest.raises(ConfigError, match="needs b"):
        load_claim(bad)
    bad.write_text(bad.read_text().replace('compare = "ratio", ', '').replace("[[claim.cases]]", 'post_rows = "prune("\n[[claim.cases]]'))
    with pytest.raises(ConfigError, match="post_rows must be a list"):
        load_claim(bad)
    proc = cli("claims", "--only", "nope")
    assert proc.returncode == 2 and "unknown claim 'nope'" in proc.stderr
    assert len(plan(claim, "smoke")) < len(plan(claim, "cpu"))  # smoke is a subset


def test_table_rows_for_post_stages_named_by_conditions_or_post_rows():
    def run(seed):
        post = [{"label": f"prune(sparsity={q})", "metrics": {"m": seed + q}} for q in (0.5, 0.9)]
        return {"variant": "a", "flat": {}, "values": {"m": seed, "other": 1.0}, "summary": {"post": post}}

    class C:
        cases = [{"conditions": [{"a": {"variant": "a", "post": "prune(sparsity=0.9)"}, "b": {"variant": "a"}}]}]
        post_rows = []

    groups = {"a": [run(0), run(1)]}
    rows = with_post_rows(groups, C)
    assert list(rows) == ["a", "a + prune(sparsity=0.9)"]  # only the stage a condition names
    assert [r["values"] for r in rows["a + prune(sparsity=0.9)"]] == [{"m": 0.9}, {"m": 1.9}]  # the stage's own
    C.post_rows = ["prune("]
    assert list(with_post_rows(groups, C)) == ["a", "a + prune(sparsity=0.5)", "a + prune(sparsity=0.9)"]
