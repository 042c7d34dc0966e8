"""When a claim's design was fixed: the commit since which its files parse as now; comments do not count."""

import datetime as dt
import json
import shutil
import subprocess

import pytest

from experiments.claims.provenance import design_commit, design_line, runs_wall


def _commit(repo, message):
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message],
                   check=True)
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()[:10]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command (reads a repository's history)")
def test_the_design_commit_is_the_last_change_of_content_not_of_comments(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    claim, experiment = tmp_path / "claim.toml", tmp_path / "exp.toml"
    claim.write_text('[claim]\nid = "1"\n')
    experiment.write_text("[train]\nsteps = 100\n")
    _commit(tmp_path, "first")
    experiment.write_text("[train]\nsteps = 400\n")
    fixed = _commit(tmp_path, "the design")
    claim.write_text('# measured: 2.1 bits/char\n[claim]\nid = "1"   # a comment\n')
    _commit(tmp_path, "comments only")
    commit, when = design_commit([claim, experiment])
    assert commit == fixed
    later = when + dt.timedelta(minutes=5)
    assert "before the first of these runs finished" in design_line([claim, experiment], [later, later])
    assert "**after**" in design_line([claim, experiment], [when - dt.timedelta(minutes=5)])
    experiment.write_text("[train]\nsteps = 800\n")  # changed and not committed: no commit fixed it
    assert design_commit([claim, experiment]) is None
    assert "not found in git history" in design_line([claim, experiment], [later])


def test_runs_wall_sums_recorded_walls_and_counts_the_runs_without_one(tmp_path):
    dirs = []
    for i, summary in enumerate([{"wall_s": 1800.0}, {"wall_s": 2700.0}, {"status": "finished"}]):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "summary.json").write_text(json.dumps(summary))
        dirs.append(tmp_path / str(i))
    assert runs_wall(dirs[:2]) == "1 h 15 min"
    assert runs_wall(dirs[:1]) == "30.0 min"
    assert runs_wall(dirs) == "1 h 15 min (1 of 3 runs have no recorded wall)"
