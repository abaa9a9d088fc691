"""The one exception type users see as a message instead of a traceback (aepipe.entrypoint), and
the refusal of what needs an extra that is not installed."""


class AepipeError(Exception):
    """A problem with the user's input or environment, explained in the message."""


def require_dask(what: str) -> None:
    """Refuse `what` where the grid extra (Dask) is not installed, saying how to install it."""
    try:
        import distributed  # noqa: F401
    except ImportError as error:
        raise AepipeError(f"{what} needs Dask: pip install -e '.[grid]'") from error
