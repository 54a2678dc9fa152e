"""The OpenWrt package, checked by reading the built .ipk (nothing taken from build-ipk's own
variables), installed into a scratch root as opkg would unpack it, and its procd init script
run against sample uci files with procd's functions recorded instead of executed."""

import gzip
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

from conftest import HMAC_KEY_B64, KEY_B64, REPO, need_tool

BUILD = os.path.join(REPO, "scripts", "build-ipk")
INIT = os.path.join(REPO, "openwrt", "files", "spa-lite.init")


# bytecode for the interpreter running the tests, so the installed package runs here
PYVER = "%d.%d" % sys.version_info[:2]


def build(outdir, epoch="1700000000"):
    env = dict(os.environ, SOURCE_DATE_EPOCH=epoch)
    r = subprocess.run([sys.executable, BUILD, "--output-dir", str(outdir), "--python-version",
                        PYVER], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    names = os.listdir(outdir)
    assert len(names) == 1
    return os.path.join(str(outdir), names[0])


@pytest.fixture(scope="module")
def ipk(tmp_path_factory):
    return build(tmp_path_factory.mktemp("ipk"))


def members(blob: bytes):
    """(TarInfo, bytes) of a gzip'd tar, in archive order."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob)), mode="r:") as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]


def raw_typeflags(tar_bytes: bytes):
    """Typeflag of every header block, read from the bytes (tarfile would hide PAX headers)."""
    flags, off = [], 0
    while off + 512 <= len(tar_bytes) and tar_bytes[off:off + 512] != b"\0" * 512:
        hdr = tar_bytes[off:off + 512]
        size = int(hdr[124:136].strip(b"\0 ") or b"0", 8)
        flags.append(chr(hdr[156]))
        off += 512 + (size + 511) // 512 * 512
    return flags


def parts(ipk_path):
    with open(ipk_path, "rb") as fh:
        blob = fh.read()
    outer = members(blob)
    inner = {m.name: data for m, data in outer}
    return blob, outer, inner


def control_fields(text: str) -> dict:
    fields, last = {}, None
    for line in text.splitlines():
        if line.startswith(" "):
            fields[last] += "\n" + line
        else:
            last, _, value = line.partition(": ")
            fields[last] = value
    return fields


# ------------------------------------------------------------------ structure
def test_outer_layout_is_openwrts_gzipped_gnu_tar(ipk):
    blob, outer, inner = parts(ipk)
    assert os.path.basename(ipk) == "spa-lite_0.1.0-1_all.ipk"
    assert blob[:2] == b"\x1f\x8b" and blob[3] & 0x08 == 0     # gzip, no file name stored
    assert blob[4:8] == b"\0\0\0\0"                             # gzip -n: no mtime
    assert [m.name for m, _ in outer] == ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
    assert inner["./debian-binary"] == b"2.0\n"
    for name in ("./data.tar.gz", "./control.tar.gz"):
        raw = gzip.decompress(inner[name])
        assert set(raw_typeflags(raw)) <= set("0123456LK"), name   # opkg knows no PAX 'x'
    assert set(raw_typeflags(gzip.decompress(blob))) == {"0"}
    for m, _ in outer:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", 1700000000)


def test_control_fields_as_openwrt_writes_them(ipk):
    _, _, inner = parts(ipk)
    ctl = {m.name: (m, data) for m, data in members(inner["./control.tar.gz"])}
    assert sorted(ctl) == [".", "./conffiles", "./control", "./postinst", "./postinst-pkg",
                           "./postrm", "./prerm", "./prerm-pkg"]
    text = ctl["./control"][1].decode()
    fields = control_fields(text)
    assert list(fields)[:2] == ["Package", "Version"]
    assert list(fields)[-3:] == ["Architecture", "Installed-Size", "Description"]
    assert fields["Package"] == "spa-lite" and fields["Version"] == "0.1.0-1"
    assert fields["Architecture"] == "all"
    assert fields["Depends"] == "libc, python3-light, nftables-json"   # libc as the SDK adds it
    assert fields["License"] == "MIT" and fields["LicenseFiles"] == "LICENSE"
    assert fields["SourceDateEpoch"] == "1700000000"
    data_tar = gzip.decompress(inner["./data.tar.gz"])
    assert int(fields["Installed-Size"]) == len(data_tar)
    assert text.startswith("Package: spa-lite\nVersion: 0.1.0-1\n")
    assert re.search(r"^Description:  \S", text, re.M)          # OpenWrt's two spaces
    assert ctl["./conffiles"][1] == b"/etc/config/spa-lite\n"
    for name in ("./postinst", "./postinst-pkg", "./postrm", "./prerm", "./prerm-pkg"):
        assert ctl[name][0].mode == 0o755, name
    assert ctl["./control"][0].mode == 0o644
    assert ctl["./postinst"][1].decode().splitlines() == [
        "#!/bin/sh", '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0',
        "[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0",
        ". ${IPKG_INSTROOT}/lib/functions.sh", "default_postinst $0 $@"]
    assert ctl["./prerm"][1].decode().splitlines()[-1] == "default_prerm $0 $@"


def test_maintainer_scripts_parse_and_do_nothing_in_an_image_build(ipk, tmp_path):
    _, _, inner = parts(ipk)
    for m, data in members(inner["./control.tar.gz"]):
        if m.isfile() and data.startswith(b"#!/bin/sh"):
            script = tmp_path / m.name[2:]
            script.write_bytes(data)
            assert subprocess.run(["sh", "-n", str(script)]).returncode == 0, m.name
            # IPKG_INSTROOT set (image builder): no firewall reload, no service start
            r = subprocess.run(["/bin/sh", str(script)], env={"IPKG_INSTROOT": str(tmp_path),
                                                          "PATH": "/nonexistent"},
                               capture_output=True, text=True, timeout=10)
            assert r.returncode == 0 and r.stderr == "", (m.name, r.stderr)


SYSTEMD_ONLY = ("spa_lite/systemd.py", "spa_lite/manpage.py")   # install-systemd: not OpenWrt


def test_data_holds_exactly_the_package_files_with_modes(ipk):
    _, _, inner = parts(ipk)
    data = {m.name: (m, d) for m, d in members(inner["./data.tar.gz"])}
    names = [m.name for m, _ in members(inner["./data.tar.gz"])]
    assert names == sorted(names, key=lambda n: n.rstrip("/").split("/"))   # tar --sort=name
    modes = {n: m.mode for n, (m, _) in data.items()}
    assert modes["./etc/config/spa-lite"] == 0o600
    assert modes["./etc/init.d/spa-lite"] == 0o755
    assert modes["./usr/bin/spa-lite"] == 0o755
    assert data["./lib/upgrade/keep.d/spa-lite"][1] == b"/etc/config/spa-lite\n"
    for inc in ("table-pre", "chain-pre/input", "chain-pre/dstnat", "chain-pre/forward"):
        name = "./usr/share/nftables.d/%s/spa-lite.nft" % inc
        with open(os.path.join(REPO, "openwrt", "nftables.d", inc, "spa-lite.nft"), "rb") as fh:
            assert data[name][1] == fh.read()
    # bytecode without sources (as OpenWrt ships Python): one legacy .pyc where each
    # module's .py would be
    pyc = sorted(n[len("./usr/lib/spa-lite/"):] for n in data if n.endswith(".pyc"))
    repo_py = sorted(os.path.relpath(os.path.join(d, f), REPO)[:-3] + ".pyc"
                     for d, _, fs in os.walk(os.path.join(REPO, "spa_lite"))
                     for f in fs if f.endswith(".py")
                     and os.path.relpath(os.path.join(d, f), REPO) not in SYSTEMD_ONLY)
    assert pyc == repo_py
    assert not [n for n in data if "__pycache__" in n or n.endswith(".py")]
    assert not [n for n in data if re.search(r"python3\.\d+", n)]    # no site-packages dir
    with open(os.path.join(REPO, "openwrt", "files", "spa-lite.config"), "rb") as fh:
        assert data["./etc/config/spa-lite"][1] == fh.read()


def test_build_is_reproducible(ipk, tmp_path):
    again = build(tmp_path / "a")
    with open(ipk, "rb") as a, open(again, "rb") as b:
        assert a.read() == b.read()
    # a different date must change the bytes (the date really is the only varying input)
    other = build(tmp_path / "b", epoch="1700000001")
    with open(ipk, "rb") as a, open(other, "rb") as b:
        assert a.read() != b.read()


# ------------------------------------------------------------------ scratch root
@pytest.fixture(scope="module")
def root(ipk, tmp_path_factory):
    """The package unpacked as opkg does: data.tar.gz into /, control files into
    /usr/lib/opkg/info/spa-lite.*."""
    root = tmp_path_factory.mktemp("root")
    _, _, inner = parts(ipk)
    with tarfile.open(fileobj=io.BytesIO(inner["./data.tar.gz"]), mode="r:gz") as tar:
        tar.extractall(str(root), filter="tar") if hasattr(tarfile, "data_filter") \
            else tar.extractall(str(root))
    info = root / "usr" / "lib" / "opkg" / "info"
    info.mkdir(parents=True)
    for m, data in members(inner["./control.tar.gz"]):
        if m.isfile():
            (info / ("spa-lite." + m.name[2:])).write_bytes(data)
    return root


def bare(root, *args, input=None):
    """The installed entry script on a bare interpreter: -I -S, so no site-packages (no
    pycryptodome, no checkout on sys.path): only the package's files plus Python."""
    return subprocess.run([sys.executable, "-I", "-S", str(root / "usr" / "bin" / "spa-lite")]
                          + list(args), capture_output=True, text=True, input=input,
                          timeout=60, cwd=str(root))


def test_installed_package_runs_on_a_bare_interpreter(root):
    r = bare(root, "--version")
    assert r.returncode == 0 and r.stdout.strip() == "spa-lite 0.1.0", r.stderr
    cfg = root / "tmp-spa-lite"            # a copy: the other tests want the pristine file
    shutil.copy(str(root / "etc" / "config" / "spa-lite"), str(cfg))
    r = bare(root, "keygen", "--save-uci", "phone", "--uci-file", str(cfg))
    assert r.returncode == 0, r.stderr
    r = bare(root, "server", "--uci-file", str(cfg), "--check-config")
    assert (r.returncode, r.stdout) == (0, "enabled=0 network=wan device=- capture=packet\n"), r.stderr
    # a full knock built and checked by the installed code, pure-Python AES
    keys = dict(re.findall(r"(\w+): (\S+)", bare(root, "keygen").stdout))
    pkt = bare(root, "send", "--no-rc-file", "-A", "tcp/22", "-a", "192.0.2.7", "-T",
               "--key-base64-rijndael", keys["KEY_BASE64"], "--key-base64-hmac",
               keys["HMAC_KEY_BASE64"])
    assert pkt.returncode == 0, pkt.stderr
    dec = bare(root, "decode", "--no-rc-file", "--json", "--key-base64-rijndael",
               keys["KEY_BASE64"], "--key-base64-hmac", keys["HMAC_KEY_BASE64"],
               input=pkt.stdout)
    assert dec.returncode == 0 and '"message": "192.0.2.7,tcp/22"' in dec.stdout, dec.stderr
    r = bare(root, "-c", "import spa_lite")   # argparse error, not a traceback
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------ the init script
def test_init_script_passes_sh_n_and_shellcheck():
    assert subprocess.run(["sh", "-n", INIT]).returncode == 0
    shellcheck = need_tool("shellcheck")
    r = subprocess.run([shellcheck, INIT], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


# The init script run as /etc/rc.common runs it under procd (package/base-files rc.common:
# start = rc_procd start_service, reload = reload_service if defined, else start; rc_procd
# wraps the call in procd_open_service/procd_close_service, and procd.sh's close runs
# service_triggers then sends procd "ubus call service set", which replaces the service's
# instances with the ones just declared: none declared stops the running daemon). procd's
# functions are recorded instead of executed; config_load/config_get_bool (functions.sh)
# read the uci file through the installed package's own parser.
STUBS = r"""
rec() { printf '%s\n' "$*" >> "$LOG"; }
logger() { rec logger "$@"; }
procd_open_service() { rec open_service "$1"; }
procd_close_service() { service_triggers; rec ubus service "${1:-set}"; }
procd_open_instance() { rec open_instance; }
procd_set_param() { rec set_param "$@"; }
procd_close_instance() { rec close_instance; }
procd_add_reload_trigger() { rec reload_trigger "$@"; }
procd_add_reload_interface_trigger() { rec interface_trigger "$@"; }
config_load() { :; }
config_get_bool() {
	local v
	v=$("$PY" -I -S -c 'import sys; sys.path.insert(0, sys.argv[1])
from spa_lite import uci
s = [x for x in uci.load(sys.argv[2]) if x.name == sys.argv[3]]
print(s[0].get(sys.argv[4], "") if s else "")' "$LIB" "$CFG" "$2" "$3")
	case "$v" in
	1|on|true|yes|enabled) v=1 ;;
	0|off|false|no|disabled) v=0 ;;
	*) v="$4" ;;
	esac
	eval "$1=\$v"
}
. "$INIT"
PROG="$SHIM"
rc_procd() { procd_open_service spa-lite "$INIT"; "$@"; procd_close_service set; }
start() { rc_procd start_service "$@"; }
reload() {
	if eval "type reload_service" 2>/dev/null >/dev/null; then reload_service "$@"; else start; fi
}
"$ACTION"; rec ${ACTION}_rc $?
"""


def run_init(root, tmp_path, uci_text, device="", action="start"):
    """``/etc/init.d/spa-lite ACTION`` as rc.common and procd run it, with procd's
    functions recorded, network_get_device answering ``device``, and spa-lite being the
    installed package reading ``uci_text`` as /etc/config/spa-lite."""
    cfg = tmp_path / "spa-lite"
    cfg.write_text(uci_text)
    cfg.chmod(0o600)
    shim = tmp_path / "spa-lite-shim"
    shim.write_text('#!/bin/sh\nfor a in "$@"; do shift; if [ "$a" = --uci ]; then '
                    'set -- "$@" --uci-file "%s"; else set -- "$@" "$a"; fi; done\n'
                    'exec "%s" -I -S "%s" "$@"\n' % (cfg, sys.executable,
                                                     root / "usr" / "bin" / "spa-lite"))
    shim.chmod(0o755)
    instroot = tmp_path / "instroot"
    (instroot / "lib" / "functions").mkdir(parents=True, exist_ok=True)
    (instroot / "lib" / "functions" / "network.sh").write_text(
        'network_get_device() { rec network_get_device "$2"; eval "$1=\\$STUB_DEVICE"; }\n')
    log = tmp_path / "log"
    if log.exists():
        log.unlink()
    env = {"PATH": os.environ["PATH"], "LOG": str(log), "SHIM": str(shim),
           "INIT": str(root / "etc" / "init.d" / "spa-lite"), "IPKG_INSTROOT": str(instroot),
           "STUB_DEVICE": device, "ACTION": action, "PY": sys.executable, "CFG": str(cfg),
           "LIB": str(root / "usr" / "lib" / "spa-lite")}
    r = subprocess.run(["sh", "-c", STUBS], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return log.read_text().splitlines()


def enabled(text: str) -> str:
    return text.replace("option enabled '0'", "option enabled '1'", 1)


def keyed(text: str) -> str:
    """The shipped config after keygen --save-uci and server.enabled=1."""
    return enabled(text.replace("option key_base64 '__CHANGEME__'", "option key_base64 '%s'"
                                % KEY_B64)
                   .replace("option hmac_key_base64 '__CHANGEME__'",
                            "option hmac_key_base64 '%s'" % HMAC_KEY_B64))


@pytest.fixture
def shipped(root):
    return (root / "etc" / "config" / "spa-lite").read_text()


def test_fresh_install_does_not_start_with_placeholder_keys(root, tmp_path, shipped):
    """As shipped (what default_postinst starts right after install) the service is off:
    no instance, no error, one notice that says how to turn it on."""
    log = run_init(root, tmp_path, shipped, device="pppoe-wan")
    assert "open_instance" not in log and "start_rc 0" in log
    assert not [l for l in log if "daemon.err" in l], log
    note = [l for l in log if "daemon.notice" in l]
    assert len(note) == 1 and "spa-lite keygen --qr --save-uci phone" in note[0] \
        and "uci set spa-lite.server.enabled=1" in note[0], log


def test_init_refuses_placeholder_keys_and_says_why(root, tmp_path, shipped):
    log = run_init(root, tmp_path, enabled(shipped), device="pppoe-wan")
    assert "open_instance" not in log      # rc.common still sends an empty service set
    line = [i for i, l in enumerate(shipped.splitlines(), 1) if "key_base64 '__CHANGEME__'" in l][0]
    errs = [l for l in log if l.startswith("logger -t spa-lite -p daemon.err")]
    assert any("KEY_BASE64 is still the placeholder __CHANGEME__" in l and ":%d:" % line in l
               for l in errs), log
    assert any("not started: fix /etc/config/spa-lite" in l for l in errs)
    assert "reload_trigger spa-lite" in log


def test_init_starts_on_the_wan_device_with_procd_params(root, tmp_path, shipped):
    log = run_init(root, tmp_path, keyed(shipped), device="pppoe-wan")
    assert "network_get_device wan" in log
    i = log.index("open_instance")
    inst = log[i:log.index("close_instance")]
    cmd = [l for l in inst if l.startswith("set_param command ")]
    assert cmd == ["set_param command %s server --uci -i pppoe-wan"
                   % (tmp_path / "spa-lite-shim")]                # $PROG, overridden here
    for want in ("set_param netdev pppoe-wan", "set_param respawn", "set_param stdout 1",
                 "set_param stderr 1", "set_param file /etc/config/spa-lite",
                 "set_param env PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1"):
        assert want in inst, (want, inst)
    assert log[-4:] == ["reload_trigger spa-lite", "interface_trigger wan", "ubus service set",
                        "start_rc 0"]


def test_init_device_option_skips_the_network_lookup(root, tmp_path, shipped):
    text = keyed(shipped).replace("#option device 'pppoe-wan'", "option device 'eth1'") \
                         .replace("option network 'wan'", "option network 'wan6'")
    log = run_init(root, tmp_path, text)
    assert not [l for l in log if l.startswith("network_get_device")]
    assert any(l.endswith(" server --uci -i eth1") for l in log)
    assert "set_param netdev eth1" in log and "interface_trigger wan6" in log


def test_init_waits_for_a_network_that_is_down(root, tmp_path, shipped):
    log = run_init(root, tmp_path, keyed(shipped), device="")
    assert "open_instance" not in log and "start_rc 0" in log
    assert any("network wan has no device yet" in l for l in log)
    assert "interface_trigger wan" in log          # procd starts it when wan comes up


def test_init_disabled_and_udp_mode(root, tmp_path, shipped):
    log = run_init(root, tmp_path, shipped.replace("__CHANGEME__", KEY_B64))
    assert "open_instance" not in log and any("disabled in /etc/config/spa-lite" in l for l in log)
    log = run_init(root, tmp_path, keyed(shipped).replace("option capture 'packet'",
                                                          "option capture 'udp'"))
    assert not [l for l in log if l.startswith("network_get_device")]
    assert any(l.endswith(" server --uci") for l in log)
    assert not [l for l in log if "netdev" in l]


def test_reload_with_a_bad_config_keeps_the_running_daemon(root, tmp_path, shipped):
    """uci set spa-lite.phone.fw_access_timeout=banana; uci commit; reload (what LuCI's
    Save & Apply and reload_config trigger): the error is logged, the reload refused, and
    procd is sent nothing, so the running instance keeps serving. A good config reloads
    into a new instance."""
    good = run_init(root, tmp_path, keyed(shipped), device="pppoe-wan", action="reload")
    assert "open_instance" in good and "ubus service set" in good and "reload_rc 0" in good
    bad = keyed(shipped).replace("option fw_access_timeout '30'",
                                 "option fw_access_timeout 'banana'")
    log = run_init(root, tmp_path, bad, device="pppoe-wan", action="reload")
    assert "ubus service set" not in log, log       # procd would drop the instance
    assert "reload_rc 1" in log
    errs = [l for l in log if "daemon.err" in l]
    line = [i for i, l in enumerate(bad.splitlines(), 1) if "banana" in l][0]
    assert any("FW_ACCESS_TIMEOUT" in l and ":%d:" % line in l for l in errs), log
    assert any("reload refused" in l and "keeps its previous settings" in l for l in errs)
    # disabling is not an error: the reload goes through and procd stops the daemon
    off = run_init(root, tmp_path, bad.replace("option enabled '1'", "option enabled '0'", 1),
                   action="reload")
    assert "ubus service set" in off and "open_instance" not in off


def test_keep_d_and_conffiles_cover_the_keys(root):
    keep = (root / "lib" / "upgrade" / "keep.d" / "spa-lite").read_text().split()
    conffiles = (root / "usr" / "lib" / "opkg" / "info" / "spa-lite.conffiles").read_text().split()
    assert "/etc/config/spa-lite" in keep and "/etc/config/spa-lite" in conffiles


# Stdlib modules OpenWrt splits out of python3-light into their own packages
# (lang/python/python3/files/python3-package-*.mk): importing one would need a dependency.
OPENWRT_SPLIT = {
    "asyncio", "ctypes", "dbm", "decimal", "_decimal", "logging", "lzma", "_lzma",
    "multiprocessing", "ssl", "_ssl", "_hashlib", "pydoc", "readline", "curses", "sqlite3",
    "unittest", "urllib", "email", "uuid", "venv", "xml", "cgi", "distutils", "lib2to3",
    "ensurepip", "idlelib", "tkinter", "_codecs_cn", "_codecs_hk", "_codecs_jp", "_codecs_kr",
    "_codecs_tw", "_multibytecodec", "http",
}
OPTIONAL = {"Crypto", "Cryptodome", "cryptolib", "ucryptolib", "micropython", "uhashlib",
            "ubinascii", "utime"}   # guarded imports: pycryptodome, MicroPython
# Split-out modules one file may import under an ImportError guard that says what to install:
# ssl for the client's -R over HTTPS (python3-openssl).
GUARDED_SPLIT = {("ssl", "spa_lite/client/resolve.py")}


def test_everything_imported_is_in_python3_light():
    """Every import in spa_lite, lazy ones included, is spa_lite itself, python3-light's
    stdlib or a guarded optional module; none needs a split-out OpenWrt package."""
    import ast
    found = {}
    for d, _, fs in os.walk(os.path.join(REPO, "spa_lite")):
        for f in fs:
            if not f.endswith(".py"):
                continue
            path = os.path.join(d, f)
            with open(path, encoding="utf-8") as fh:
                tree = ast.parse(fh.read(), path)
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module]
                for n in names:
                    found.setdefault(n.split(".")[0], set()).add(os.path.relpath(path, REPO))
    assert "spa_lite" in found and "socket" in found      # the scan sees real imports
    bad = {m: sorted(f for f in w if (m, f) not in GUARDED_SPLIT)
           for m, w in found.items() if m in OPENWRT_SPLIT}
    bad = {m: w for m, w in bad.items() if w}
    assert not bad, "needs an OpenWrt package beyond python3-light: %s" % bad
    unknown = {m for m in found if m not in OPTIONAL and m != "spa_lite"
               and m not in sys.stdlib_module_names}
    assert not unknown, unknown
