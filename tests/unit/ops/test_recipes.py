"""fwsetup.ops.recipes: the comparison table's derived columns and the validation of a recipe folder."""

from __future__ import annotations

from pathlib import Path

from fwsetup.ops import recipes as ops


def test_every_row_says_its_gpu_vendors_and_newest_installable_release() -> None:
    rows = {r["name"]: r for r in ops.comparison_table()}
    torch = rows["pytorch"]
    assert "NVIDIA" in torch["gpu_vendors"] and torch["installable"] and torch["latest"]
    cpu_only = [r for r in rows.values() if r["gpu_vendors"] == ["none (CPU only)"]]
    assert all(r["name"] != "pytorch" for r in cpu_only)


def test_a_recipe_view_sums_its_builds_per_variant() -> None:
    view = ops.recipe_view(ops.recipe("pytorch"))
    variants = [b["variant"] for b in view.builds]
    assert len(variants) == len(set(variants)) and "cpu" in variants
    for b in view.builds:
        assert b["versions"] == sorted(b["versions"], key=lambda v: tuple(int(p) for p in v.split(".")[:2]))


def test_validation_names_the_file_of_a_broken_recipe(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text('name = "broken"\n')
    done = ops.validate(str(tmp_path))
    assert done.dirs == [str(tmp_path)] and done.count == 0
    assert done.problems and all("broken.toml" in p for p in done.problems)
    assert done.insecure == []
