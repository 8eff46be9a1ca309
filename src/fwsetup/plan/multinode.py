"""Whether a framework can be smoke-tested across nodes (`fwsetup smoke NAME --nodes N`): the recipe's
comparison-table fact `multi_node` ("yes (torch.distributed)", "no", "not applicable (managed)") is the rule,
so a recipe of your own (--recipes DIR) that says "no" is refused before any node is asked."""

from __future__ import annotations

from fwsetup.recipes.schema import Recipe


def trains_across_nodes(recipe: Recipe) -> bool:
    """The recipe's facts say its framework trains across machines (facts.multi_node starts with "yes")."""
    return recipe.facts.multi_node.strip().lower().startswith("yes")


def multi_node_refusal(recipe: Recipe) -> str | None:
    """None when a multi-node smoke test may run for `recipe`, else why not (a sentence quoting the fact)."""
    if trains_across_nodes(recipe):
        return None
    return (
        f"{recipe.title or recipe.name} does not train across machines (its recipe's multi_node fact: "
        f"{recipe.facts.multi_node!r}), so it has no multi-node smoke test."
    )
