"""The one exception type that reaches the user as a single line instead of a traceback."""


class RobustadError(Exception):
    """Bad input or data: the CLI prints the message on one line and exits with code 2."""
