"""Ctrl-C that cannot be lost, and that only the user can give.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be; raised inside a finalizer (a
``__del__`` or a weakref callback run by the garbage collector) it is printed and swallowed, and a run would go
on to the end and exit 0. The handler installed here also remembers the request, so the executors stop after the
row they are landing and the CLI still exits with 130. Remembering it also tells the user's Ctrl-C apart from a
``KeyboardInterrupt`` (or ``SystemExit``) that plugin code raises itself: that is the plugin's failure.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

_requested = threading.Event()


def install() -> None:
    """Handle SIGINT in this process: remember it, then raise ``KeyboardInterrupt`` as Python's default does
    (only the main thread may set a handler; elsewhere the current one stays)."""
    _requested.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)


def settle() -> None:
    """The process is only exiting now: a further Ctrl-C is ignored, so that it cannot turn the exit (atexit
    handlers, torch's and weakref finalizers among them) into a traceback (SIGTERM still ends it); an interrupted
    run then leaves through ``exit_now``, which no late Ctrl-C can turn into a death by SIGINT."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def exit_now(code: int) -> None:
    """End an interrupted process with ``code`` at once, its streams flushed: a Ctrl-C still arriving while Python
    shuts down could otherwise end it by SIGINT instead (the rows are on disk already, each landed row fsynced)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def requested() -> bool:
    """Whether Ctrl-C was pressed since ``install``."""
    return _requested.is_set()


def stop_if_requested() -> None:
    """Raise ``KeyboardInterrupt`` when Ctrl-C was pressed, even if the first one was swallowed."""
    if _requested.is_set():
        raise KeyboardInterrupt


def is_users(error: BaseException) -> bool:
    """Whether ``error`` is the user's Ctrl-C: a ``KeyboardInterrupt`` after SIGINT reached the handler, or any
    ``KeyboardInterrupt`` while the handler is not installed (a Python caller's, which cannot be told apart)."""
    if not isinstance(error, KeyboardInterrupt):
        return False
    return _requested.is_set() or signal.getsignal(signal.SIGINT) is not _on_sigint


def _on_sigint(signum: int, frame: object) -> None:
    if _requested.is_set() and _handling_interrupt():
        return  # a second Ctrl-C while the first unwinds would interrupt its cleanup with a traceback
    _requested.set()
    raise KeyboardInterrupt


def _handling_interrupt() -> bool:
    """Whether the code this handler interrupted is handling a ``KeyboardInterrupt`` (in an ``except``,
    ``finally`` or ``__exit__``), or an exception raised while handling one (click's ``Abort``)."""
    error = sys.exc_info()[1]
    while error is not None:
        if isinstance(error, KeyboardInterrupt):
            return True
        error = error.__context__
    return False
