"""Nested mappings (params, metrics) as DVC names their leaves: `train.lr`, `per_batch.k`."""


def dotted_leaves(tree: dict, prefix: str = "") -> dict:
    """{"a.b": value} for each leaf of a nested mapping, in its order."""
    leaves = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            leaves.update(dotted_leaves(value, f"{prefix}{name}."))
        else:
            leaves[f"{prefix}{name}"] = value
    return leaves
