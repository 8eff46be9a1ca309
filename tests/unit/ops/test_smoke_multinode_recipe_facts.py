"""fwsetup.ops.smoke_multinode: whether NAME gets a multi-node smoke test is the recipe's fact (multi_node),
not a list of frameworks: a recipe of your own that says "no" is refused before any node is asked, and
a framework whose multi-node test runs only under Slurm says so for the other launcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwsetup.errors import UsageError
from fwsetup.ops import smoke_multinode as multi
from fwsetup.recipes.load import shipped_recipes_dir


def test_a_recipe_that_does_not_train_across_machines_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (shipped_recipes_dir() / "tensorflow.toml").read_text()
    assert 'multi_node = "yes (' in text
    mine = tmp_path / "recipes"
    mine.mkdir()
    (mine / "tensorflow.toml").write_text(text.replace('multi_node = "yes (', 'multi_node = "no (', 1))
    monkeypatch.setenv("FWSETUP_RECIPES", str(mine))
    with pytest.raises(UsageError, match=r"--nodes: TensorFlow does not train across machines .*'no \("):
        multi.slurm_job("tf", None, nodes=2, others=False, port=None, launcher="slurm")
    monkeypatch.delenv("FWSETUP_RECIPES")
    job = multi.slurm_job("tf", "/usr/bin/python3", nodes=2, others=False, port=None, launcher="slurm")
    assert (job.framework, job.nodes) == ("tensorflow", 2)


def test_a_slurm_only_test_asks_for_the_slurm_launcher() -> None:
    with pytest.raises(UsageError, match="tensorflow runs under Slurm: add --launcher slurm"):
        multi.hosts_job("tensorflow", None, nodes=2, addrs=[], netns=[], hostfile=None, port=None)
    with pytest.raises(UsageError, match="not tensorflow's: give --launcher slurm"):
        multi.check_launcher("torchrun", "tensorflow")
