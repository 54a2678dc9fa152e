"""spa-lite's own package: metadata from openwrt/Makefile, files from the checkout. The
one file list both scripts/build-ipk and scripts/build-apk use."""

import os
import re
import sys

from . import bytecode
from .makefile import depends, read_makefile
from .model import Package, PackageError, source_date_epoch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAKEFILE = os.path.join(ROOT, "openwrt", "Makefile")
INSTALL_DIR = "usr/lib/spa-lite"

# (path in the package, source in the checkout, mode) as in Package/spa-lite/install
FILES = [
    ("usr/bin/spa-lite", "openwrt/files/spa-lite.bin", 0o755),
    ("etc/config/spa-lite", "openwrt/files/spa-lite.config", 0o600),
    ("etc/init.d/spa-lite", "openwrt/files/spa-lite.init", 0o755),
    ("lib/upgrade/keep.d/spa-lite", "openwrt/files/spa-lite.keep", 0o644),
]
INCLUDES = ("usr/share/nftables.d", "openwrt/nftables.d")   # every file below, 0644
SKIP = re.compile(r"(^|/)(__pycache__|\.[^/]*)(/|$)|\.py[co]$|~$")
#: modules for systemd hosts only (spa-lite install-systemd): OpenWrt has procd
NOT_ON_OPENWRT = {"systemd.py", "manpage.py"}

#: Python of each OpenWrt release (lang/python/python3-version.mk)
PYTHON_OF_RELEASE = {"24.10": "3.11", "25.12": "3.13"}


def _walk(base: str):
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not SKIP.search(d))
        for name in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), base).replace(os.sep, "/")
            if not SKIP.search(rel):
                with open(os.path.join(dirpath, name), "rb") as fh:
                    yield rel, fh.read()


def python_files(python_version: str = None, sources: bool = False, warn=None) -> dict:
    """package path -> (bytes, 0644) for the spa_lite modules: bytecode for
    ``python_version`` (sources too if ``sources``), or sources only when
    ``python_version`` is None or no interpreter of that version is here (``warn`` is
    told why)."""
    src = {"spa_lite/" + rel: data for rel, data in _walk(os.path.join(ROOT, "spa_lite"))
           if rel.endswith(".py") and rel not in NOT_ON_OPENWRT}
    if python_version:
        try:
            tree = bytecode.compile_tree(src, python_version, "/" + INSTALL_DIR, sources)
        except bytecode.BytecodeUnavailable as exc:
            if warn:
                warn("%s: the package ships sources only (compiled in memory at each start "
                     "on the router)" % exc)
            tree = src
    else:
        tree = src
    return {"%s/%s" % (INSTALL_DIR, rel): (data, 0o644) for rel, data in tree.items()}


def spa_lite_package(python_version: str = None, sources: bool = False, warn=None) -> Package:
    """The spa-lite package as openwrt/Makefile describes it."""
    mk = read_makefile(MAKEFILE)
    name = mk["PKG_NAME"]
    with open(os.path.join(ROOT, "spa_lite", "__init__.py"), encoding="utf-8") as fh:
        code_version = re.search(r'__version__ = "([^"]+)"', fh.read()).group(1)
    if mk["PKG_VERSION"] != code_version:
        raise PackageError("openwrt/Makefile PKG_VERSION %s differs from spa_lite.__version__ %s"
                           % (mk["PKG_VERSION"], code_version))
    files = {}
    for dst, src, mode in FILES:
        with open(os.path.join(ROOT, src), "rb") as fh:
            files[dst] = (fh.read(), mode)
    for rel, data in _walk(os.path.join(ROOT, INCLUDES[1])):
        files["%s/%s" % (INCLUDES[0], rel)] = (data, 0o644)
    files.update(python_files(python_version, sources, warn))
    return Package(
        name, mk["PKG_VERSION"], mk["PKG_RELEASE"], files,
        description=mk["Package/%s/description" % name],
        depends=depends(mk["DEPENDS"]),
        conffiles=mk["Package/%s/conffiles" % name].split(),
        license=mk.get("PKG_LICENSE", ""), license_files=mk.get("PKG_LICENSE_FILES", ""),
        maintainer=mk.get("PKG_MAINTAINER", ""), url=mk.get("URL", ""),
        section=mk.get("SECTION", ""), source="feeds/packages/%s/%s" % (mk.get("SECTION", "net"), name),
        arch=mk["PKGARCH"], epoch=source_date_epoch(ROOT),
        postinst=mk.get("Package/%s/postinst" % name), prerm=mk.get("Package/%s/prerm" % name),
        postrm=mk.get("Package/%s/postrm" % name))


def main(fmt: str, default_release: str) -> None:
    """scripts/build-ipk and scripts/build-apk: one CLI for both formats."""
    import argparse
    from . import apk, ipk
    writer = {"ipk": ipk, "apk": apk}[fmt]
    ap = argparse.ArgumentParser(
        prog="build-" + fmt,
        description="Build the spa-lite .%s without the OpenWrt SDK (SOURCE_DATE_EPOCH sets the date)."
        % fmt)
    ap.add_argument("--output-dir", default=os.path.join(ROOT, "dist"), metavar="DIR")
    ap.add_argument("--openwrt", default=default_release, choices=sorted(PYTHON_OF_RELEASE),
                    help="target release; picks the Python version of the bytecode "
                         "(default %(default)s)")
    ap.add_argument("--python-version", metavar="X.Y",
                    help="compile for this Python instead of the release's")
    ap.add_argument("--source-only", action="store_true",
                    help="ship .py files only, no bytecode")
    ap.add_argument("--with-sources", action="store_true",
                    help="ship the .py files beside the bytecode (like OpenWrt's -src packages)")
    args = ap.parse_args()
    version = None if args.source_only else (args.python_version or PYTHON_OF_RELEASE[args.openwrt])

    def warn(msg):
        sys.stderr.write("build-%s: %s\n" % (fmt, msg))
    try:
        pkg = spa_lite_package(version, args.with_sources, warn)
    except (PackageError, OSError) as exc:
        warn(str(exc))
        sys.exit(2)
    data = writer.build(pkg)
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, writer.filename(pkg))
    with open(path, "wb") as fh:
        fh.write(data)
    sys.stdout.write("%s: %d bytes, installed %d bytes\n"
                     % (os.path.relpath(path), len(data), writer.installed_size(pkg)))
