"""fwsetup.plan.multinode: the recipe's multi_node fact decides whether a framework gets a multi-node smoke."""

from __future__ import annotations

import msgspec
import pytest

from fwsetup.plan.multinode import multi_node_refusal, trains_across_nodes
from fwsetup.recipes.load import load_recipes


@pytest.mark.parametrize(
    ("name", "across"),
    [("pytorch", True), ("jax", True), ("tensorflow", True), ("theano", False), ("amazon-ml", False)],
)
def test_the_shipped_recipes_facts(name: str, across: bool) -> None:
    recipe = load_recipes().get(name)
    assert trains_across_nodes(recipe) is across
    assert (multi_node_refusal(recipe) is None) is across


def test_the_refusal_quotes_the_fact() -> None:
    tf = load_recipes().get("tensorflow")
    mine = msgspec.structs.replace(tf, facts=msgspec.structs.replace(tf.facts, multi_node="No (one machine)"))
    assert not trains_across_nodes(mine)
    assert multi_node_refusal(mine) == (
        "TensorFlow does not train across machines (its recipe's multi_node fact: 'No (one machine)'), so it "
        "has no multi-node smoke test."
    )
