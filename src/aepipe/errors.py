"""The one exception type users see as a message instead of a traceback (aepipe.entrypoint)."""


class AepipeError(Exception):
    """A problem with the user's input or environment, explained in the message."""
