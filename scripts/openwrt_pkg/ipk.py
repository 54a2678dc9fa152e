"""opkg ``.ipk`` writer, as OpenWrt's scripts/ipkg-build and include/package-pack.mk make
them: an outer gzip'd GNU tar (not a Debian ``ar``: OpenWrt's opkg rejects those) holding
./debian-binary, ./data.tar.gz and ./control.tar.gz in that order; inner tars GNU format,
owner 0:0, names sorted, mtimes = the package's epoch, ``gzip -n``."""

from .model import Package
from .tarball import gzip_n, tar_of, tree_tar

# The generated wrappers, as package-pack.mk writes them for opkg: they run the package's
# own scripts (postinst-pkg, prerm-pkg) through default_postinst/default_prerm, which also
# enable/start (or stop/disable) the package's /etc/init.d scripts.
POSTINST = """#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
"""
PRERM = """#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
"""


def version(pkg: Package) -> str:
    return "%s-%s" % (pkg.version, pkg.release)


def filename(pkg: Package) -> str:
    return "%s_%s_%s.ipk" % (pkg.name, version(pkg), pkg.arch)


def control_text(pkg: Package, installed_size: int) -> str:
    """The control file in package-pack.mk's field order."""
    fields = [
        ("Package", pkg.name),
        ("Version", version(pkg)),
        ("Depends", ", ".join(pkg.depends)),
        ("Provides", ", ".join(pkg.provides)),
        ("Source", pkg.source),
        ("SourceName", pkg.name),
        ("License", pkg.license),
        ("LicenseFiles", pkg.license_files),
        ("Section", pkg.section),
        ("SourceDateEpoch", str(pkg.epoch)),
        ("URL", pkg.url),
        ("Maintainer", pkg.maintainer),
        ("Architecture", pkg.arch),
        ("Installed-Size", str(installed_size)),
    ]
    lines = ["%s: %s" % (k, v) for k, v in fields if v]
    desc = pkg.description.strip("\n").split("\n")
    # printf "Description: "; echo "$DESCRIPTION" | sed -e 's,^[[:space:]]*, ,g'
    lines.append("Description: " + "\n".join(" " + l.lstrip() for l in desc))
    return "\n".join(lines) + "\n"


def _script(body: str) -> bytes:
    # BuildPackVariable: echo "$body" > file  (echo adds the final newline)
    return (body.rstrip("\n") + "\n").encode()


def build(pkg: Package) -> bytes:
    """The .ipk file's bytes."""
    data_tar = tree_tar(pkg.files, pkg.epoch)
    control = {
        "control": (control_text(pkg, len(data_tar)).encode(), 0o644),
        "postinst": (POSTINST.encode(), 0o755),
        "prerm": (PRERM.encode(), 0o755),
    }
    if pkg.conffiles:
        control["conffiles"] = (("\n".join(sorted(pkg.conffiles)) + "\n").encode(), 0o644)
    for body, target in ((pkg.postinst, "postinst-pkg"), (pkg.prerm, "prerm-pkg"),
                         (pkg.postrm, "postrm")):
        if body:
            control[target] = (_script(body), 0o755)
    outer = tar_of([("debian-binary", (b"2.0\n", 0o644)),
                    ("data.tar.gz", (gzip_n(data_tar), 0o644)),
                    ("control.tar.gz", (gzip_n(tree_tar(control, pkg.epoch)), 0o644))],
                   pkg.epoch)
    return gzip_n(outer)


def installed_size(pkg: Package) -> int:
    """opkg's Installed-Size: the byte count of the uncompressed data tar (ipkg-build)."""
    return len(tree_tar(pkg.files, pkg.epoch))
