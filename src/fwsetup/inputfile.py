"""Reading a file fwsetup is given (a HostProfile, a recipe, a node file): one rule for all of them.

Only a regular file is read, and only up to a size its kind of file never reaches. The file is opened
without blocking and looked at (fstat) before a byte is read, so a FIFO (whose open and read wait for a
writer for ever), a device (`/dev/zero`: endless), a folder or a socket is refused at once, and a huge
file costs nothing. The caller turns InputFileError into its own error (exit 2), naming the file's role.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["InputFileError", "read_input"]


class InputFileError(Exception):
    """Why a file cannot be read as input, in words that follow "cannot read FILE: " ("it is a named pipe
    (FIFO), not a regular file", "No such file or directory")."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def read_input(path: str | os.PathLike[str], *, limit: int) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them; InputFileError for anything else
    (missing, unreadable, not a regular file, larger than `limit`)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(Path(path), flags)
    except OSError as exc:
        raise InputFileError(exc.strerror or str(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputFileError(f"it is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise InputFileError(
                f"it is {_size(st.st_size)}, larger than the {_size(limit)} such a file can be"
            )
        chunks: list[bytes] = []
        got = 0
        while got <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise InputFileError(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if got > limit:  # it grew while being read
        raise InputFileError(f"it is larger than the {_size(limit)} such a file can be")
    return b"".join(chunks)
