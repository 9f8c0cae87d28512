"""The installed version of robustad, read once (rows and pages record it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("robustad")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
