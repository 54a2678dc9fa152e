"""What a reviewer of openwrt/packages checks in the feed Makefile (CONTRIBUTING: copyright
notice, maintainer, SPDX licence and licence files, PKG_RELEASE, a fixed source with its
hash), the licence everywhere it is declared, the dependencies in the Makefile and both
packages, and the release tarball behind PKG_HASH."""

import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile


from apk_reader import read_apk
from conftest import REPO

MAKEFILE = os.path.join(REPO, "openwrt", "Makefile")
RELEASE = os.path.join(REPO, "scripts", "release")


def mk_text():
    with open(MAKEFILE) as fh:
        return fh.read()


def mk_vars():
    return dict(re.findall(r"^\s*([A-Z_]+):=(.*)$", mk_text(), re.M))


def test_makefile_follows_the_feed_conventions():
    text, v = mk_text(), mk_vars()
    assert re.search(r"^# Copyright \(C\) 20\d\d ", text, re.M)
    assert text.index("include $(TOPDIR)/rules.mk") < text.index("PKG_NAME:=")
    assert re.fullmatch(r"[a-z0-9-]+", v["PKG_NAME"]) and v["PKG_RELEASE"].isdigit()
    assert re.fullmatch(r"\d+\.\d+\.\d+", v["PKG_VERSION"])
    assert v["PKG_SOURCE"] == "$(PKG_NAME)-$(PKG_VERSION).tar.gz"
    assert v["PKG_SOURCE_URL"].startswith("https://") and "latest" not in v["PKG_SOURCE_URL"]
    assert re.fullmatch(r"[0-9a-f]{64}", v["PKG_HASH"])      # never skip
    # a person and an address, in the form the feed's tooling parses
    assert re.fullmatch(r"[^<>]+ <[^@<>\s]+@[^@<>\s]+>", v["PKG_MAINTAINER"])
    assert "noreply" not in v["PKG_MAINTAINER"]
    assert v["PKG_LICENSE"] == "MIT" and v["PKG_LICENSE_FILES"] == "LICENSE"
    for field in ("SECTION", "CATEGORY", "TITLE", "URL", "DEPENDS", "PKGARCH"):
        assert re.search(r"^  %s:=\S" % field, text, re.M), field
    # literal package names in define/call/eval lines (CONTRIBUTING), BuildPackage last
    assert "$(PKG_NAME)" not in "".join(re.findall(r"^(?:define|\$\(eval).*$", text, re.M))
    assert text.rstrip().splitlines()[-1] == "$(eval $(call BuildPackage,spa-lite))"
    for i, line in enumerate(text.splitlines(), 1):
        assert line == line.rstrip(), "trailing whitespace on line %d" % i
    # recipes indented with tabs, as make needs
    install = re.search(r"^define Package/spa-lite/install\n(.*?)^endef", text, re.M | re.S).group(1)
    assert all(l.startswith("\t") for l in install.splitlines() if l.strip())
    # bytecode as OpenWrt's Python packages build it
    assert "--invalidation-mode unchecked-hash" in install and "-b" in install.split()


def test_licence_is_mit_everywhere():
    with open(os.path.join(REPO, "LICENSE")) as fh:
        assert fh.readline().strip() == "MIT License"
    with open(os.path.join(REPO, "setup.py")) as fh:
        setup = fh.read()
    assert 'license_expression="MIT"' in setup and 'license_files=["LICENSE"]' in setup
    assert "GPL" not in setup
    with open(os.path.join(REPO, "pyproject.toml")) as fh:
        pyproject = fh.read()
    assert 'build-backend = "setuptools.build_meta"' in pyproject


def build(tool, outdir):
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", tool), "--output-dir",
                        str(outdir), "--source-only"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, SOURCE_DATE_EPOCH="1700000000"))
    assert r.returncode == 0, r.stderr
    (name,) = os.listdir(str(outdir))
    with open(os.path.join(str(outdir), name), "rb") as fh:
        return fh.read()


def test_dependencies_in_the_makefile_and_both_packages(tmp_path):
    """nftables-json, not nftables (which nftables-nojson satisfies, and nft -j is what
    listing and the grant watch use); libc as the SDK adds it to every package."""
    deps = mk_vars()["DEPENDS"].split()
    assert deps == ["+python3-light", "+nftables-json"]
    outer = tarfile.open(fileobj=io.BytesIO(gzip.decompress(build("build-ipk", tmp_path / "i"))))
    ctl = tarfile.open(fileobj=io.BytesIO(outer.extractfile("./control.tar.gz").read()))
    control = ctl.extractfile("./control").read().decode()
    assert re.search(r"^Depends: libc, python3-light, nftables-json$", control, re.M)
    info = read_apk(build("build-apk", tmp_path / "a"))["package"]["info"]
    assert [d["name"] for d in info["depends"]] == ["libc", "nftables-json", "python3-light"]


def git(cwd, *args):
    r = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"] + list(args),
                       cwd=str(cwd), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def release(cwd, *args, env=None):
    return subprocess.run([sys.executable, os.path.join(str(cwd), "scripts", "release")] + list(args),
                          cwd=str(cwd), capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


def test_release_tarball_is_reproducible_and_is_pkg_hash(tmp_path):
    """In a clone: the tarball is the same bytes whatever the umask; --update-makefile
    puts its sha256 into PKG_HASH and, once committed (the release commit), --check
    agrees; any later change to the sources makes --check fail in one line."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", REPO, str(clone))
    # the release tool of this working tree (perhaps not committed yet)
    for rel in ("scripts/release", "scripts/openwrt_pkg/tarball.py", "scripts/openwrt_pkg/__init__.py"):
        os.makedirs(os.path.dirname(str(clone / rel)), exist_ok=True)
        shutil.copy2(os.path.join(REPO, rel), str(clone / rel))
    git(clone, "add", "scripts")
    git(clone, "commit", "-qm", "tools", "--allow-empty")
    r1 = release(clone, "--output-dir", str(tmp_path / "a"))
    assert r1.returncode == 0, r1.stderr
    r2 = subprocess.run(["sh", "-c", 'umask 077; exec "$0" "$1" --output-dir "$2"', sys.executable,
                         os.path.join(str(clone), "scripts", "release"), str(tmp_path / "b")],
                        cwd=str(clone), capture_output=True, text=True, timeout=120)
    assert r2.returncode == 0, r2.stderr
    (name,) = os.listdir(str(tmp_path / "a"))
    a = (tmp_path / "a" / name).read_bytes()
    assert a == (tmp_path / "b" / name).read_bytes()
    assert name == "spa-lite-%s.tar.gz" % mk_vars()["PKG_VERSION"]
    with tarfile.open(fileobj=io.BytesIO(a)) as tar:
        names = tar.getnames()
        members = tar.getmembers()
    prefix = name[:-len(".tar.gz")] + "/"
    assert all(n.startswith(prefix) or n + "/" == prefix for n in names)
    assert prefix + "LICENSE" in names and prefix + "openwrt/files/spa-lite.init" in names
    assert prefix + "openwrt/Makefile" not in names          # the feed's, it holds the hash
    assert all(m.uid == 0 and m.gid == 0 and m.mode in (0o644, 0o755) for m in members)

    r = release(clone, "--update-makefile", "--output-dir", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    mk = (clone / "openwrt" / "Makefile").read_text()
    assert "PKG_HASH:=%s\n" % hashlib.sha256(a).hexdigest() in mk
    git(clone, "commit", "-qam", "spa-lite: release", "--allow-empty")   # empty if current
    assert release(clone, "--check").returncode == 0
    (clone / "README.md").write_text("changed\n")
    git(clone, "commit", "-qam", "change")
    r = release(clone, "--check")
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1
    assert "PKG_HASH" in r.stderr and "--update-makefile" in r.stderr
