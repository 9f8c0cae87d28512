"""The one exception type that reaches the user as a single line instead of a traceback."""


class RobustadError(Exception):
    """Bad input or data: the CLI prints the message on one line and exits with code 2."""


def one_line(error: object) -> str:
    """An error as one line: a RobustadError's message, else ``Type: message`` (whitespace collapsed)."""
    if isinstance(error, RobustadError):
        text = str(error)
    elif isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    else:
        text = str(error)
    return " ".join(text.split())
