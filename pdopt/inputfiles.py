"""Opening input files without surprises: regular files only, sizes checked before reading.

`pdopt check /dev/zero` must not read forever, a named pipe (FIFO) must not block the process
waiting for a writer, and a 1 GB file must be refused from its size, not after reading it. Every
reader of a user-named input file opens it through here (docs/scenario-format.md, "Validation").
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


class InputFileError(Exception):
    """An input file that cannot be read; the message says why, to follow `cannot read file: `
    (no file name: the caller adds it the way its messages name files)."""


class FileTooLargeError(InputFileError):
    """A file beyond its size limit; the message is a whole sentence (`file is N bytes; ...`)."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def describe_path(path: str | Path) -> str | None:
    """None for a regular file (after symlinks); otherwise why it is not one: 'not found',
    'a directory', 'a named pipe (FIFO)', ... Never opens the file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "not found"
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    return None if stat.S_ISREG(mode) else _kind(mode)


def open_regular(path: str | Path) -> tuple[BinaryIO, int]:
    """Open a regular file for reading in binary mode; returns the file and its size in bytes.

    Opened with O_NONBLOCK, so a FIFO without a writer cannot block the open, then checked with
    fstat (the same file that was opened, not a name that may change in between). Raises
    InputFileError for anything but a regular file, or when it cannot be opened."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise InputFileError("is a directory") from None
    except OSError as e:
        kind = describe_path(path)
        if kind not in (None, "not found") and not kind.startswith("cannot"):
            raise InputFileError(f"is {kind}, not a regular file") from None
        raise InputFileError(str(e.strerror or e)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _kind(info.st_mode)
            raise InputFileError("is a directory" if kind == "a directory" else
                                 f"is {kind}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: str | Path, limit: int, what: str = "files") -> bytes:
    """The bytes of a regular file of at most `limit` bytes; refused from its size before reading
    (and after reading at most limit + 1 bytes, should it grow meanwhile)."""
    fh, size = open_regular(path)
    with fh:
        if size > limit:
            raise FileTooLargeError(f"file is {size} bytes; {what} are limited to {limit} bytes")
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise FileTooLargeError(f"file is more than {limit} bytes; {what} are limited to "
                             f"{limit} bytes")
    return raw
