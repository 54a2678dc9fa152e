"""The package description both writers read."""

import hashlib
import os
import re
import subprocess
from typing import Dict, List, Optional, Tuple

#: package path (no leading slash) -> (content, mode). Directories are implied.
Files = Dict[str, Tuple[bytes, int]]

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")
VERSION_RE = re.compile(r"^\d+(\.\d+)*$")


class PackageError(ValueError):
    """The description cannot make a valid package; the message names the field."""


class Package:
    """One OpenWrt package, format-neutral.

    ``version`` is PKG_VERSION and ``release`` PKG_RELEASE: the ipk spells them
    ``X.Y.Z-N``, the apk ``X.Y.Z-rN`` (apk rejects ``-N``). ``depends`` are package names
    as in the Makefile's DEPENDS without ``+``; ``libc`` is added as OpenWrt's
    PKG_FIXUP_DEPENDS does. ``postinst``/``prerm``/``postrm`` are the package's own script
    bodies (Package/<name>/postinst etc.); the writers wrap them the way package-pack.mk
    does for each format. ``epoch`` (SOURCE_DATE_EPOCH) is every timestamp written.
    """

    def __init__(self, name: str, version: str, release: str, files: Files, *,
                 description: str, depends: List[str] = (), provides: List[str] = (),
                 conffiles: List[str] = (), license: str = "", license_files: str = "",
                 maintainer: str = "", url: str = "", section: str = "",
                 source: str = "", arch: str = "all", epoch: int = 0,
                 postinst: Optional[str] = None, prerm: Optional[str] = None,
                 postrm: Optional[str] = None) -> None:
        self.name, self.version, self.release = name, version, str(release)
        self.files = dict(files)
        self.description = description
        self.depends = ["libc"] + [d for d in depends if d != "libc"]
        self.provides = list(provides)
        self.conffiles = list(conffiles)
        self.license, self.license_files = license, license_files
        self.maintainer, self.url, self.section = maintainer, url, section
        self.source = source or "feeds/packages/%s" % name
        self.arch, self.epoch = arch, int(epoch)
        self.postinst, self.prerm, self.postrm = postinst, prerm, postrm
        self.check()

    def check(self) -> None:
        if not NAME_RE.match(self.name):
            raise PackageError("name %r: lower-case letters, digits and _.+- only" % self.name)
        if not VERSION_RE.match(self.version):
            raise PackageError("version %r: digits and dots only (X.Y.Z)" % self.version)
        if not self.release.isdigit():
            raise PackageError("release %r: a number" % self.release)
        for path, (data, mode) in self.files.items():
            if path.startswith("/") or path.endswith("/") or "//" in path or \
                    any(p in (".", "..") for p in path.split("/")):
                raise PackageError("file path %r: relative, no empty, . or .. parts" % path)
            if not isinstance(data, bytes) or not 0 <= mode <= 0o7777:
                raise PackageError("file %s: content must be bytes, mode 0..07777" % path)
        for c in self.conffiles:
            if c.lstrip("/") not in self.files:
                raise PackageError("conffile %s is not a file of the package" % c)

    @property
    def description_line(self) -> str:
        """The description as one line (what apk's description field holds)."""
        return " ".join(self.description.split())

    def dirs(self) -> List[str]:
        """Every directory the files need, parents included, without the root."""
        out = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return sorted(out)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def source_date_epoch(root: str) -> int:
    """SOURCE_DATE_EPOCH, else the last commit's date (so a checkout always builds the
    same bytes); PackageError if neither exists."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env is not None:
        if not env.isdigit():
            raise PackageError("SOURCE_DATE_EPOCH must be a number of seconds")
        return int(env)
    try:
        out = subprocess.run(["git", "-C", root, "log", "-1", "--format=%ct"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip().isdigit():
            return int(out.stdout.strip())
    except OSError:
        pass
    raise PackageError("no SOURCE_DATE_EPOCH and no git history to take the date from")
