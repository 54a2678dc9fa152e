"""The one way spa-lite writes a file: atomically (a temporary file in the same directory,
then rename), so a reader never sees half of it and a crash never leaves a truncated
~/.fwknoprc, uci config or unit file behind; a file that may hold keys is 0600 from its first
byte (``write_private``)."""

import os

from spa_lite.errors import UsageError


def write_private(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8), mode 0600; one line naming the file on error."""
    write_atomic(path, text, 0o600)


def write_atomic(path: str, text: str, mode: int) -> None:
    """Replace ``path`` with ``text`` (UTF-8), given ``mode``; the temporary file is 0600 until
    it has that mode, so nothing readable by others ever holds part of it. One line naming
    the file on error."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, mode)             # O_CREAT's mode is masked by umask: set it exactly
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as exc:
        raise UsageError("%s: cannot write: %s" % (path, exc.strerror or exc))
