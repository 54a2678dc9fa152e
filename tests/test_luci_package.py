"""scripts/build-luci-app: luci-app-spa-lite as its own noarch .ipk and .apk, built twice to
the same bytes, with the app's files at the paths luci.mk installs them to, depending on
luci-base and spa-lite. The .apk is read back with tests/apk_reader.py (written from
apk-tools' documentation, independent of the writer)."""

import gzip
import io
import os
import subprocess
import sys
import tarfile

import pytest

from tests.conftest import REPO

SCRIPT = os.path.join(REPO, "scripts", "build-luci-app")
EPOCH = "1764460800"
EXPECTED_FILES = {
    "www/luci-static/resources/view/spa-lite/overview.js",
    "www/luci-static/resources/view/spa-lite/keys.js",
    "www/luci-static/resources/view/spa-lite/settings.js",
    "www/luci-static/resources/spa-lite/common.js",
    "www/luci-static/resources/spa-lite/qr.js",
    "usr/share/luci/menu.d/luci-app-spa-lite.json",
    "usr/share/rpcd/acl.d/luci-app-spa-lite.json",
}


def build(outdir, epoch=EPOCH, umask=None):
    env = dict(os.environ, SOURCE_DATE_EPOCH=epoch)
    r = subprocess.run([sys.executable, SCRIPT, "--output-dir", str(outdir)], env=env,
                       capture_output=True, text=True, timeout=120,
                       preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
    assert r.returncode == 0, r.stderr
    names = sorted(os.listdir(outdir))
    assert names == ["luci-app-spa-lite-0.1.0-r1.apk", "luci-app-spa-lite_0.1.0-1_all.ipk"]
    return [os.path.join(outdir, n) for n in names]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build(tmp_path_factory.mktemp("dist"))


def ipk_parts(path):
    with tarfile.open(path, "r:gz") as outer:
        assert outer.getnames() == ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
        data = outer.extractfile("./data.tar.gz").read()
        control = outer.extractfile("./control.tar.gz").read()
    return data, control


def test_ipk_files_at_luci_paths_and_metadata(built):
    _, ipk = built
    data, control = ipk_parts(ipk)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as t:
        members = {m.name[2:]: m for m in t.getmembers() if m.isfile()}
        assert set(members) == EXPECTED_FILES
        for name, m in members.items():
            assert (m.mode, m.uid, m.gid) == (0o644, 0, 0), name
            src = name.replace("www/", "openwrt/luci-app-spa-lite/htdocs/", 1) if name.startswith("www/") \
                else "openwrt/luci-app-spa-lite/root/" + name
            with open(os.path.join(REPO, src), "rb") as fh:
                assert t.extractfile(m).read() == fh.read(), name
        assert all(m.mode == 0o755 for m in t.getmembers() if m.isdir())
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(control))) as t:
        fields = dict(l.split(": ", 1) for l in
                      t.extractfile("./control").read().decode().splitlines() if ": " in l)
    assert fields["Package"] == "luci-app-spa-lite" and fields["Version"] == "0.1.0-1"
    assert fields["Depends"] == "libc, luci-base, spa-lite"
    assert fields["Architecture"] == "all" and fields["Section"] == "luci"


def test_apk_files_at_luci_paths_and_metadata(built):
    sys.path.insert(0, os.path.join(REPO, "tests"))
    try:
        from apk_reader import extract, read_apk
    finally:
        sys.path.pop(0)
    apk, _ = built
    with open(apk, "rb") as fh:
        parsed = read_apk(fh.read())
    info = parsed["package"]["info"]
    assert (info["name"], info["version"], info["arch"]) == ("luci-app-spa-lite", "0.1.0-r1", "noarch")
    assert [d["name"] for d in info["depends"]] == ["libc", "luci-base", "spa-lite"]
    tree = extract(parsed)
    files = {p for p, v in tree.items() if v[0] is not None}
    assert EXPECTED_FILES <= files
    assert not [f for f in files - EXPECTED_FILES if not f.startswith("lib/apk/packages/")]
    for name in EXPECTED_FILES:
        body, mode, user, group, _ = tree[name]
        assert (mode, user, group) == (0o644, "root", "root"), name
        assert body == ipk_body(built[1], name)


def ipk_body(ipk, name):
    data, _ = ipk_parts(ipk)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as t:
        return t.extractfile("./" + name).read()


def test_reproducible_whatever_the_umask(built, tmp_path):
    again = build(tmp_path / "again", umask=0o002)
    for a, b in zip(built, again):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read(), os.path.basename(a)
    other = build(tmp_path / "other", epoch="1764460801")
    with open(built[1], "rb") as fa, open(other[1], "rb") as fb:
        assert fa.read() != fb.read()                    # the date is really in there
