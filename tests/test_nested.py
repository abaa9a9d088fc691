from aepipe.nested import dotted_leaves


def test_dotted_leaves_names_each_leaf_by_its_path_in_order():
    tree = {"train": {"lr": 0.001, "opt": {"name": "adam"}}, "seed": 42, "tags": [1, 2]}
    assert list(dotted_leaves(tree).items()) == [
        ("train.lr", 0.001),
        ("train.opt.name", "adam"),
        ("seed", 42),
        ("tags", [1, 2]),
    ]
