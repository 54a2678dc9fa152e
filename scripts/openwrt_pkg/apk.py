"""apk-tools v3 ``.apk`` writer (OpenWrt 25.12 and later), producing what ``apk mkpkg``
makes from the options OpenWrt's include/package-pack.mk passes it.

The file: ``ADBd`` + raw deflate (level 9) of: ``ADB.`` + schema ``pckg`` + one ADB block
(the package tree: info, paths, scripts) + one DATA block per non-empty regular file, in
the order of the (sorted) paths and files arrays, each starting with its 1-based path and
file index. Field numbers are apk-tools' src/apk_adb.h. ``info.hashes`` is the first 20
bytes of the SHA-256 of the ADB payload computed while that field is still zero, as
mkpkg does. Every directory is listed (mkpkg's default, root node included) with owner
root:root; modes come from the Package, never from the builder's umask.
"""

import hashlib
import re
import struct
import zlib

from . import adb
from .model import Package, sha256_hex

SCHEMA_PACKAGE = 0x676B6370            # "pckg"
MAGIC = b"ADB."

# schema field numbers (apk-tools src/apk_adb.h)
PI_NAME, PI_VERSION, PI_HASHES, PI_DESCRIPTION, PI_ARCH, PI_LICENSE = 1, 2, 3, 4, 5, 6
PI_ORIGIN, PI_MAINTAINER, PI_URL, PI_INSTALLED_SIZE = 7, 8, 9, 0x0C
PI_DEPENDS, PI_PROVIDES, PI_TAGS = 0x0F, 0x10, 0x15
ACL_MODE, ACL_USER, ACL_GROUP = 1, 2, 3
FI_NAME, FI_ACL, FI_SIZE, FI_MTIME, FI_HASHES = 1, 2, 3, 4, 5
DI_NAME, DI_ACL, DI_FILES = 1, 2, 3
SCRIPT_FIELDS = {"pre-install": 2, "post-install": 3, "pre-deinstall": 4,
                 "post-deinstall": 5, "pre-upgrade": 6, "post-upgrade": 7}
PKG_INFO, PKG_PATHS, PKG_SCRIPTS = 1, 2, 3
DEP_NAME = 1
HASH_LEN = 20


def version(pkg: Package) -> str:
    return "%s-r%s" % (pkg.version, pkg.release)


def filename(pkg: Package) -> str:
    return "%s-%s.apk" % (pkg.name, version(pkg))


def _strip_shebangs(body: str) -> str:
    """sed '/^\\s*#!/d' of a script body written with echo (final newline added)."""
    lines = body.rstrip("\n").split("\n")
    return "".join(l + "\n" for l in lines if not l.lstrip().startswith("#!"))


def scripts(pkg: Package) -> dict:
    """The maintainer scripts package-pack.mk generates for apk, by apk script name."""
    post_install = ("#!/bin/sh\n"
                    '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0\n'
                    "[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n"
                    ". ${IPKG_INSTROOT}/lib/functions.sh\n"
                    'export root="${IPKG_INSTROOT}"\n'
                    'export pkgname="%s"\n'
                    "add_group_and_user\n"
                    "default_postinst\n" % pkg.name)
    if pkg.postinst:
        post_install += _strip_shebangs(pkg.postinst)
    out = {
        "post-install": post_install,
        "post-upgrade": "#!/bin/sh\nexport PKG_UPGRADE=1\n" + _strip_shebangs(post_install),
        "pre-deinstall": ("#!/bin/sh\n"
                          "[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n"
                          ". ${IPKG_INSTROOT}/lib/functions.sh\n"
                          'export root="${IPKG_INSTROOT}"\n'
                          'export pkgname="%s"\n'
                          "default_prerm\n" % pkg.name
                          + (_strip_shebangs(pkg.prerm) if pkg.prerm else "")),
    }
    if pkg.postrm:
        out["post-deinstall"] = re.sub(r"^\s*#!", "#!", pkg.postrm.rstrip("\n") + "\n")
    return out


def payload_files(pkg: Package) -> dict:
    """The package's files plus what package-pack.mk adds for apk under
    /lib/apk/packages: <name>.list (every file, before the conffiles lists are added),
    <name>.conffiles and <name>.conffiles_static (path and sha256 of each shipped one)."""
    files = dict(pkg.files)
    base = "lib/apk/packages/%s" % pkg.name
    files[base + ".list"] = ("".join("/%s\n" % p for p in sorted(files)).encode(), 0o644)
    if pkg.conffiles:
        files[base + ".conffiles"] = ("".join("%s\n" % c for c in pkg.conffiles).encode(),
                                      0o644)
        files[base + ".conffiles_static"] = ("".join(
            "%s %s\n" % (c, sha256_hex(pkg.files[c.lstrip("/")][0]))
            for c in pkg.conffiles).encode(), 0o644)
    return files


def _acl(w: adb.AdbWriter, mode: int) -> int:
    return w.obj({ACL_MODE: w.int(mode), ACL_USER: w.string("root"),
                  ACL_GROUP: w.string("root")})


def _deps(w: adb.AdbWriter, names) -> int:
    # dependency arrays are sorted by name and made unique (adb_wa_sort_unique)
    return w.array([w.obj({DEP_NAME: w.string(n)}) for n in sorted(set(names),
                                                                 key=lambda n: n.encode())])


def build(pkg: Package) -> bytes:
    """The .apk file's bytes."""
    files = payload_files(pkg)
    w = adb.AdbWriter()
    info = {
        PI_NAME: w.string(pkg.name),
        PI_VERSION: w.string(version(pkg)),
        PI_DESCRIPTION: w.string(pkg.description_line),
        PI_ARCH: w.string("noarch" if pkg.arch == "all" else pkg.arch),
        PI_LICENSE: w.string(pkg.license),
        PI_ORIGIN: w.string(pkg.source),
        PI_MAINTAINER: w.string(pkg.maintainer),
        PI_URL: w.string(pkg.url),
        PI_DEPENDS: _deps(w, pkg.depends),
        PI_PROVIDES: _deps(w, pkg.provides + ["%s-any" % pkg.name]),
    }
    if pkg.section:
        info[PI_TAGS] = w.array([w.string("openwrt:section=%s" % pkg.section)])
    hashes, hash_at = w.blob_placeholder(HASH_LEN)
    info[PI_HASHES] = hashes
    info[PI_INSTALLED_SIZE] = w.int(sum(len(d) for d, _ in files.values()) or 1)

    # directories (root first: its name is empty) and their files, both sorted by name
    by_dir = {"": []}
    for path in files:
        parts = path.split("/")[:-1]
        for k in range(1, len(parts) + 1):
            by_dir.setdefault("/".join(parts[:k]), [])
    for path in files:
        d, _, name = path.rpartition("/")
        by_dir[d].append(name)
    order = []                      # (path index, file index, path) of the data blocks
    dir_vals = []
    for i, d in enumerate(sorted(by_dir, key=lambda d: d.encode()), 1):
        file_vals = []
        for j, name in enumerate(sorted(by_dir[d], key=lambda n: n.encode()), 1):
            path = d + "/" + name if d else name
            data, mode = files[path]
            file_vals.append(w.obj({
                FI_NAME: w.string(name), FI_ACL: _acl(w, mode), FI_SIZE: w.int(len(data)),
                FI_MTIME: w.int(pkg.epoch), FI_HASHES: w.blob(hashlib.sha256(data).digest())}))
            if data:
                order.append((i, j, path))
        dir_vals.append(w.obj({DI_NAME: w.string(d), DI_ACL: _acl(w, 0o755),
                               DI_FILES: w.array(file_vals)}))
    script_vals = {SCRIPT_FIELDS[k]: w.string(v) for k, v in scripts(pkg).items()}
    root = w.obj({PKG_INFO: w.obj(info), PKG_PATHS: w.array(dir_vals),
                  PKG_SCRIPTS: w.obj(script_vals)})
    payload = bytearray(w.finish(root))
    payload[hash_at:hash_at + HASH_LEN] = hashlib.sha256(payload).digest()[:HASH_LEN]

    out = [MAGIC, struct.pack("<I", SCHEMA_PACKAGE), adb.block(adb.BLOCK_ADB, bytes(payload))]
    for i, j, path in order:
        out.append(adb.block(adb.BLOCK_DATA, struct.pack("<II", i, j) + files[path][0]))
    comp = zlib.compressobj(9, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    return b"ADBd" + comp.compress(b"".join(out)) + comp.flush()


def installed_size(pkg: Package) -> int:
    return sum(len(d) for d, _ in payload_files(pkg).values())
