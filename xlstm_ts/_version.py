"""The installed package version (a leaf module: it imports nothing of the package)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xlstm-ts")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
