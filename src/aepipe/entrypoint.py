"""How every entry point (each stage, the `aepipe` command) runs its main: a user-facing error as
one readable message and exit status 2, and the objects its imports made left out of the garbage
collector's walks."""

import gc
import sys
from collections.abc import Callable

from aepipe.errors import AepipeError


def exit_on_error(main: Callable[[], None]) -> None:
    """Run `main`; turn a user-facing error into one readable message on stderr and exit status
    2."""
    # What the entrypoint imported (torch alone makes nearly 200,000 objects) stays alive
    # till the process ends: left out of the garbage collector's walks, which Python's shutdown
    # would otherwise spend most of a second on.
    gc.freeze()
    try:
        main()
    except AepipeError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except FileNotFoundError as error:
        print(
            f"error: {error.filename}: file not found (run the stage that makes it first)",
            file=sys.stderr,
        )
        sys.exit(2)
