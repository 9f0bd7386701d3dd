"""Atomic writes: a killed or failing writer leaves the previous file or directory,
never a partial one. New outputs get the permissions the umask gives an ordinary
new file or directory (``tempfile`` alone would make them owner-only)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def swap_in(staging: Path, target: Path) -> None:
    """Replace the directory ``target`` by the finished directory ``staging`` beside it:
    readers see the old or the new one, never a half-written one."""
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def atomic_directory(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(staging)`` on a fresh sibling directory of ``path``, then swap it in;
    on any failure the staging directory is removed and ``path`` is untouched."""
    path = Path(path)
    if path.parent.exists() and not path.parent.is_dir():
        raise ValueError(f"cannot write {path}: its parent {path.parent} is a file.")
    if path.exists() and not path.is_dir():
        raise ValueError(f"cannot write the directory {path}: a file has that name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        os.chmod(staging, 0o777 & ~_umask())
        write(staging)
        swap_in(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
