"""Reproducible tar and gzip pieces shared by the ipk writer and scripts/release."""

import gzip
import io
import tarfile


def gzip_n(data: bytes) -> bytes:
    """gzip without a name and with mtime 0 (``gzip -n``): same input, same bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def tar_of(entries, mtime: int, prefix: str = "./") -> bytes:
    """A GNU-format tar of (path, (bytes, mode) or None for a directory), in the given
    order, owner 0:0 without names (``--numeric-owner`` under fakeroot). GNU, not PAX:
    opkg's tar reader knows no PAX headers."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path, item in entries:
            name = prefix + path + ("/" if item is None and path else "")
            info = tarfile.TarInfo(name or prefix)
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if item is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                data, mode = item
                info.size = len(data)
                info.mode = mode
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tree_tar(files: dict, mtime: int, prefix: str = "./", root: bool = True) -> bytes:
    """``files`` with their parent directories, sorted as ``tar --sort=name`` walks a tree."""
    dirs = {""} if root else set()
    for path in files:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    entries = sorted([(d, None) for d in dirs] + [(p, files[p]) for p in files],
                     key=lambda e: e[0].split("/") if e[0] else [])
    return tar_of(entries, mtime, prefix)
