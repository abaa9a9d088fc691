"""aepipe.stage_inputs: a stage's params and input files read at its start and its end."""

import os

from aepipe.stage_inputs import changes, snapshot


def test_unchanged_inputs_have_no_changes(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  epochs: 2\n  lr: 1.0e-3\nseed: 42\n")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.bin").write_bytes(b"x")
    inputs = [str(tmp_path / "raw"), str(tmp_path / "absent")]
    assert (
        changes(
            snapshot(tmp_path / "params.yaml", inputs),
            snapshot(tmp_path / "params.yaml", inputs),
        )
        == []
    )


def test_each_changed_param_is_named_with_the_value_used_and_the_value_now(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  epochs: 2\n  size: null\nseed: 42\n")
    before = snapshot(path, [])
    path.write_text("train:\n  epochs: 3\n  size: 10\nseed: 42\nextra: [1]\n")
    assert changes(before, snapshot(path, [])) == [
        "extra: ran with (absent), now [1]",
        "train.epochs: ran with 2, now 3",
        "train.size: ran with null, now 10",
    ]


def test_a_modified_added_or_removed_input_file_is_named(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "kept.bin").write_bytes(b"x")
    (folder / "gone.bin").write_bytes(b"x")
    code = tmp_path / "stage.py"
    code.write_text("a = 1\n")
    before = snapshot(tmp_path / "params.yaml", [str(folder), str(code)])
    (folder / "gone.bin").unlink()
    (folder / "new.bin").write_bytes(b"y")
    code.write_text("a = 2\n")  # the same size: its modification time tells
    os.utime(code, ns=(code.stat().st_atime_ns, code.stat().st_mtime_ns + 1_000_000))
    assert changes(before, snapshot(tmp_path / "params.yaml", [str(folder), str(code)])) == [
        f"{folder / 'gone.bin'}: removed",
        f"{folder / 'new.bin'}: added",
        f"{code}: modified",
    ]
