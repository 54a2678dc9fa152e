"""Reading the small text files spa-lite is configured with, bounded in size (writing
files that may hold keys is privfile.write_private).

``%include_keys /dev/zero`` once ended in MemoryError: every configuration, key and rc file
goes through ``read_text`` here, which stops at limits.MAX_CONFIG_FILE_SIZE. Errors are
OSError (with a ``strerror`` the callers print) or UnicodeError, as from ``open``.
"""

import errno

from spa_lite.core.limits import MAX_CONFIG_FILE_SIZE


def read_text(path: str, limit: int = MAX_CONFIG_FILE_SIZE) -> str:
    """The UTF-8 text of ``path``; OSError(EFBIG) if it is longer than ``limit`` bytes."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, "larger than %d bytes (MAX_CONFIG_FILE_SIZE)" % limit)
    return data.decode("utf-8")

