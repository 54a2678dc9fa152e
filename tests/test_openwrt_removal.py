"""Removing the package leaves nothing behind: no file of its own (the package ships its
bytecode, and never writes any at run time) and no spa-lite set or element in fw4's
table (the package's prerm/postrm, run against the firewall4 fixture in a namespace)."""

import gzip
import io
import os
import subprocess
import sys
import tarfile

import pytest

from apk_reader import extract, read_apk
from conftest import HMAC_KEY_B64, KEY_B64, REPO, need_root, need_tool
from fw4_render import render
from netns import Lab

SCRIPTS = os.path.join(REPO, "scripts")
PYVER = "%d.%d" % sys.version_info[:2]


def build(tool, outdir, *args):
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    r = subprocess.run([sys.executable, os.path.join(SCRIPTS, tool), "--output-dir", str(outdir)]
                       + list(args), env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (name,) = os.listdir(str(outdir))
    with open(os.path.join(str(outdir), name), "rb") as fh:
        return fh.read()


def ipk_parts(blob):
    outer = tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob)))
    data = tarfile.open(fileobj=io.BytesIO(outer.extractfile("./data.tar.gz").read()), mode="r:gz")
    ctl = tarfile.open(fileobj=io.BytesIO(outer.extractfile("./control.tar.gz").read()), mode="r:gz")
    files = {m.name[2:]: (data.extractfile(m).read(), m.mode) for m in data if m.isfile()}
    control = {m.name[2:]: ctl.extractfile(m).read().decode() for m in ctl if m.isfile()}
    return files, control


def installed(root, files):
    for path, (data, mode) in files.items():
        dst = root / path
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
        dst.chmod(mode)


def every_file(root):
    return sorted(os.path.relpath(os.path.join(d, f), str(root))
                  for d, _, fs in os.walk(str(root)) for f in fs)


def use_it(root, tmp_path):
    """What a user does with the installed package (each command imports other modules)."""
    exe = [sys.executable, "-I", "-S", str(root / "usr" / "bin" / "spa-lite")]
    cfg = tmp_path / "cfg"
    cfg.write_text((root / "etc" / "config" / "spa-lite").read_text()
                   .replace("key_base64 '__CHANGEME__'", "key_base64 '%s'" % KEY_B64)
                   .replace("hmac_key_base64 '%s'" % KEY_B64, "hmac_key_base64 '%s'" % HMAC_KEY_B64)
                   .replace("enabled '0'", "enabled '1'"))
    cfg.chmod(0o600)
    for args in (["--version"], ["keygen"], ["server", "--uci-file", str(cfg), "--check-config"],
                 ["server", "--uci-file", str(cfg), "-D"],
                 ["send", "--no-rc-file", "-A", "tcp/22", "-a", "192.0.2.7", "-T",
                  "--key-base64-rijndael", KEY_B64, "--key-base64-hmac", HMAC_KEY_B64]):
        r = subprocess.run(exe + args, capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
        assert r.returncode == 0, (args, r.stderr)


@pytest.mark.parametrize("variant", ["ipk", "apk", "apk-sources-only"])
def test_removal_leaves_no_file_behind(tmp_path, variant):
    if variant == "ipk":
        files, _ = ipk_parts(build("build-ipk", tmp_path / "out", "--python-version", PYVER))
    else:
        args = ["--source-only"] if variant.endswith("sources-only") else ["--python-version", PYVER]
        parsed = read_apk(build("build-apk", tmp_path / "out", *args))
        files = {p: (v[0], v[1]) for p, v in extract(parsed).items() if v[0] is not None}
    root = tmp_path / "root"
    installed(root, files)
    use_it(root, tmp_path)
    assert every_file(root) == sorted(files)          # nothing was written beside them
    for path in files:                                # opkg remove / apk del
        os.unlink(str(root / path))
    assert every_file(root) == []


# ------------------------------------------------------------------ the firewall
SETS = ("spa_allow4", "spa_allow6", "spa_dnat4", "spa_fwd4")
ELEMENTS = {
    "spa_allow4": "10.213.0.2 . tcp . 22 timeout 300s",
    "spa_allow6": "fd13:1::2 . tcp . 22 timeout 300s",
    "spa_dnat4": "10.213.0.2 . tcp . 8080 timeout 300s : 192.168.1.10 . 80",
    "spa_fwd4": "10.213.0.2 . 192.168.1.10 . tcp . 80 timeout 300s",
}


def test_sets_named_in_the_scripts_are_the_ones_the_package_declares():
    with open(os.path.join(REPO, "openwrt", "nftables.d", "table-pre", "spa-lite.nft")) as fh:
        declared = sorted(l.split()[1] for l in fh if l.startswith(("set ", "map ")))
    assert declared == sorted(SETS)
    with open(os.path.join(REPO, "openwrt", "Makefile")) as fh:
        mk = fh.read()
    for name in SETS:
        assert mk.count(name) >= 2, name              # flushed in prerm, deleted in postrm


def test_remove_leaves_no_set_or_element_in_fw4(tmp_path):
    need_root()
    need_tool("nft")
    need_tool("unshare")
    files, control = ipk_parts(build("build-ipk", tmp_path / "out", "--source-only"))
    root = tmp_path / "root"
    installed(root, files)
    includes = root / "usr" / "share" / "nftables.d"
    for name in ("prerm-pkg", "postrm"):
        (tmp_path / name).write_text(control[name])
    with Lab() as lab:
        fw = lab.ns("fw")
        lab.run(fw, "nft", "-f", "-", input=render(str(includes)))
        for name, elem in ELEMENTS.items():
            lab.run(fw, "nft", "add", "element", "inet", "fw4", name, "{ %s }" % elem)
        table = lab.run(fw, "nft", "list", "table", "inet", "fw4").stdout
        assert all(e.split(" timeout")[0].split(" . ")[0] in table for e in ELEMENTS.values())

        # prerm (opkg: prerm-pkg run by default_prerm; apk: the pre-deinstall body)
        lab.run(fw, "sh", str(tmp_path / "prerm-pkg"))
        table = lab.run(fw, "nft", "list", "table", "inet", "fw4").stdout
        assert "10.213.0.2" not in table and "fd13:1::2" not in table, table   # no access left
        assert all(name in table for name in SETS)    # the rules still use them until reload

        # the package manager removes the files; postrm reloads the firewall (here a stub
        # /etc/init.d/firewall in a private mount namespace: fw4 renders without our files)
        for path in files:
            os.unlink(str(root / path))
        rendered = tmp_path / "after.nft"
        rendered.write_text(render(str(includes)))
        stub = tmp_path / "initd"
        stub.mkdir()
        (stub / "firewall").write_text('#!/bin/sh\n[ "$1" = reload ] && exec nft -f "%s"\n'
                                       % rendered)
        (stub / "firewall").chmod(0o755)
        r = subprocess.run(["unshare", "-m", "sh", "-c",
                            'mount --bind "$0" /etc/init.d && exec ip netns exec "$1" sh "$2"',
                            str(stub), fw, str(tmp_path / "postrm")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        table = lab.run(fw, "nft", "list", "table", "inet", "fw4").stdout
        assert "spa" not in table, table
        assert "chain input" in table                 # fw4's own table is still there
