"""Runs a stage script (argv[1]) whose work, once done, waits for a gate before the stage's guard
checks its inputs: the test writes params.yaml in that window, without depending on timing.

    python tests/gated_stage.py stages/train.py  # $AEPIPE_TEST_GATE: a folder; waits for <it>/open
"""

import os
import runpy
import sys
import time
from pathlib import Path

from aepipe import run_guard as guard

GATE = Path(os.environ["AEPIPE_TEST_GATE"])
guarded = guard.run_guarded


def run_gated(main) -> None:
    def main_then_wait() -> None:
        main()
        (GATE / "inside").touch()
        while not (GATE / "open").exists():
            time.sleep(0.05)

    guarded(main_then_wait)


guard.run_guarded = run_gated
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
