"""The one way spa-lite writes a file that may hold keys: mode 0600 from its first byte, and
atomically (a temporary file in the same directory, then rename), so a reader never sees half
a key file and a crash never leaves a truncated ~/.fwknoprc or uci config behind."""

import os

from spa_lite.errors import UsageError


def write_private(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8), mode 0600; one line naming the file on error."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)            # O_CREAT's mode is masked by umask; 0600 is the floor
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as exc:
        raise UsageError("%s: cannot write: %s" % (path, exc.strerror or exc))
