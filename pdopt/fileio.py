"""Writing files so that a reader (or an interrupted run) never sees half of one."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

# write_atomic's temporary file is `.{name}.{8 random characters}.tmp` beside the target: a
# target name must leave room for these characters within the file system's NAME_MAX.
TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"
TEMP_NAME_EXTRA = len(TEMP_PREFIX) + len(".") + 8 + len(TEMP_SUFFIX)
NAME_MAX = 255  # bytes in one file name on ext4, XFS, btrfs, APFS, NTFS (UTF-16 units)


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux 4.7+)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                match = re.fullmatch(r"Umask:\s*([0-7]+)\s*", line)
                if match:
                    return int(match.group(1), 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, text: str) -> None:
    """Write text to path via a temporary file in the same folder and a rename.

    The text is written as given (no newline translation). The file gets the mode of the file it
    replaces, or for a new file 0o666 less the umask, as `open()` would give it (mkstemp's 0o600
    is only for the temporary file while it is incomplete).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.",
                               suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), mode)
        if not hasattr(os, "fchmod"):
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
