"""The plugin's files, written whole: a reader sees the old file or the whole new one, never a part.

Every output (JSON report, HTML page, baseline, heap snapshots) is written
under a temporary name in its own directory and renamed over the old one, so
an interrupted run never leaves a truncated file behind.
"""

from __future__ import annotations

import contextlib
import os
import stat

#: marks our temporary files, so an error about one is not shown with its made-up name
_TEMP_MARK = ".leakhunt-"


def write_text(path: str, text: str) -> None:
    """Write *text* to *path* whole or not at all: a temporary file in the same directory, then ``os.replace``.

    A device or pipe (``/dev/stdout``) cannot be replaced and is written in
    place. Raises OSError; the temporary file never outlives the call.
    """
    if os.path.exists(path) and not os.path.isfile(path):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return
    target = os.path.realpath(path)  # a symlink to a file: the file is replaced, the link kept
    fd, temp = _create_temp(os.path.dirname(target), os.path.basename(target))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not land before the data
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temp, stat.S_IMODE(os.stat(target).st_mode))  # replacing keeps the file's permissions
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _create_temp(directory: str, name: str) -> tuple[int, str]:
    """A new file next to where *name* goes, open for writing (mode 0o666 less the umask, like ``open``)."""
    for _ in range(100):
        temp = os.path.join(directory, f".{name}{_TEMP_MARK}{os.getpid()}-{os.urandom(4).hex()}.tmp")
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory!r}")

