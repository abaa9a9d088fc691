"""How every entry point (each stage, the `aepipe` command) runs its main: a user-facing error as
one readable message and exit status 2, and the objects its imports made left out of the garbage
collector's walks."""

import errno
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
    except Exception as error:
        if (full := disk_full(error)) is None:
            raise
        where = f" to write {full.filename}" if full.filename else ""
        print(
            f"error: no room{where} ({full.strerror}); nothing was left half-written (every "
            "output is written whole, then renamed): free space, then run the same command again",
            file=sys.stderr,
        )
        sys.exit(2)


# A full disk, a full quota, a file-size limit (ulimit -f)
NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def disk_full(error: BaseException | None) -> OSError | None:
    """The OSError of no room to write behind `error`, if any: a library (torch's zip writer)
    may raise an error of its own while handling it."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in NO_ROOM:
            return error
        error = error.__cause__ or error.__context__
    return None
