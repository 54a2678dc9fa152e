"""~/.fwknoprc shared with the real fwknop 2.6.10, both ways: a stanza fwknop saves
(--save-rc-stanza) knocks through spa-lite and the real fwknopd opens; a stanza spa-lite saves
knocks through the real fwknop and the spa-lite server grants. Every variable spa-lite writes
is read by fwknop without a "Parameter error" and gives the same packet fields."""

import os
import re
import subprocess
import sys

import pytest

from spa_lite.core import wire
from spa_lite.core.b64 import b64decode_key
from tests.conftest import HMAC_KEY_B64, KEY_B64, REPO, need_tool
from tests.test_interop_fwknop import LABELS, fwknopd, free_udp_port  # noqa: F401 (fixture)
from tests.test_server_live import Server, access_file, conf_file

K, H = b64decode_key(KEY_B64), b64decode_key(HMAC_KEY_B64)
KEYS = ["--key-base64-rijndael", KEY_B64, "--key-base64-hmac", HMAC_KEY_B64]


def real_fwknop(home, *args, check=True):
    r = subprocess.run([need_tool("fwknop"), "--no-save-args"] + list(args), capture_output=True,
                       text=True, timeout=20, env=dict(os.environ, HOME=str(home)),
                       stdin=subprocess.DEVNULL)
    assert "Parameter error" not in r.stdout + r.stderr, r.stdout + r.stderr
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def fields_of(out):
    f = {}
    for line in out.split("Generating SPA packet")[0].splitlines():
        m = re.match(r"\s*([A-Za-z ]+): (.*)$", line)
        if m and m.group(1).strip() in LABELS:
            f[LABELS[m.group(1).strip()]] = m.group(2).strip()
        elif m and m.group(1).strip() in ("HMAC Type", "Encryption Mode"):
            f[m.group(1).strip()] = m.group(2).strip()
    return f


def spa(home, *args):
    env = dict(os.environ, HOME=str(home), PYTHONPATH=REPO)
    env.pop("SPOOF_USER", None)
    r = subprocess.run([sys.executable, "-m", "spa_lite"] + list(args), capture_output=True,
                       text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert "Traceback" not in r.stderr
    return r


def test_fwknop_saves_spa_lite_knocks_fwknopd_opens(fwknopd, tmp_path):  # noqa: F811
    real_fwknop(tmp_path, "--save-rc-stanza", "--force-stanza", "-n", "fw", "-T",
                "-A", "tcp/4601", "-a", "10.213.46.1", "-D", "127.0.0.1",
                "-p", str(fwknopd.port), "-M", "ctr", "-m", "sha512", "--hmac-digest-type",
                "sha384", "-f", "45", "-U", "bob", "--time-offset-minus", "30", "--use-hmac", *KEYS)
    real_fwknop(tmp_path, "--save-rc-stanza", "-n", "fwsrc", "-T", "-s", "-A", "tcp/4602",
                "-D", "127.0.0.1", "-p", str(fwknopd.port), "-M", "ofb", "--key-rijndael",
                "fwknoptest", "--key-hmac", "hmactest", "-N", "10.213.46.9:22", "--nat-port",
                "2222", "-P", "tcp", "-S", "40123", "-u", "agent/1")
    real_fwknop(tmp_path, "--save-rc-stanza", "-n", "fwres", "-T", "-R", "--resolve-url",
                "https://127.0.0.1:9/myip", "-A", "tcp/22", "-D", "127.0.0.1", *KEYS, check=False)
    text = (tmp_path / ".fwknoprc").read_text()
    assert "[fw]" in text and "TIME_OFFSET" in text and "RESOLVE_IP_HTTPS" in text

    # every field as fwknop put it in the stanza
    r = spa(tmp_path, "send", "-T", "-n", "fw")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    m = wire.parse(r.stdout.strip(), K, "ctr", H, "sha384")
    assert (m.message, m.username, m.digest_type, m.client_timeout) == (
        "10.213.46.1,tcp/4601", "bob", "sha512", 45)
    r = spa(tmp_path, "send", "-T", "-n", "fwsrc", "-s")   # fwknop 2.6.10 does not save -s
    assert r.returncode == 0, r.stderr
    m = wire.parse(r.stdout.strip(), b"fwknoptest", "ofb", b"hmactest", "sha256")
    assert (m.message, m.nat_access) == ("0.0.0.0,tcp/2222", "10.213.46.9,22")
    r = spa(tmp_path, "send", "-T", "-n", "fwres")     # it tries the stanza's resolver
    assert r.returncode == 4 and "https://127.0.0.1:9/myip" in r.stderr

    # and the real fwknopd opens for spa-lite's knock with fwknop's stanza
    r = spa(tmp_path, "send", "-n", "fw")
    assert r.returncode == 0, r.stderr
    assert fwknopd.opened("ctr_sha384_10.213.46.1_4601"), fwknopd.text()[-2000:]


def test_spa_lite_saves_fwknop_knocks_spa_lite_server_grants(tmp_path):
    port = free_udp_port()
    conf = conf_file(tmp_path, "UDPSERV_PORT %d;\n" % port)
    acc = access_file(tmp_path, "ENCRYPTION_MODE ctr\nHMAC_DIGEST_TYPE sha384\n")
    srv = Server(None, None, "-c", conf, "-a", acc, "-U", "-t", "-C", "1")
    srv.wait_started()
    try:
        r = spa(tmp_path, "send", "-T", "--save-rc-stanza", "-n", "lite", "-A", "tcp/4701",
                "-a", "10.213.47.1", "-D", "127.0.0.1", "-p", str(port), "-P", "udp",
                "-M", "ctr", "-m", "sha512", "--hmac-digest-type", "sha384", "-f", "50",
                "-U", "carol", "--time-offset-minus", "20", "--use-hmac",
                "--server-resolve-ipv4", *KEYS)
        assert r.returncode == 0, r.stderr
        # fwknop reads every variable and builds the same fields
        f = fields_of(real_fwknop(tmp_path, "-n", "lite", "-T", "-v").stdout)
        assert (f["message"], f["user"], f["client_timeout"]) == ("10.213.47.1,tcp/4701",
                                                                  "carol", "50")
        assert f["digest"].endswith("(SHA512)") and f["HMAC Type"].endswith("(SHA384)")
        assert f["Encryption Mode"].endswith("(CTR)")
        # then knocks for real, and the spa-lite server grants exactly that
        real_fwknop(tmp_path, "-n", "lite")
        ev = srv.events()
    finally:
        if srv.p.poll() is None:
            srv.p.kill()
    assert [(e["verdict"], e["user"], e["grant"]["address"], e["grant"]["ports"], e["timeout"])
            for e in ev] == [("grant", "carol", "10.213.47.1", ["tcp/4701"], 50)]


def test_every_variable_spa_lite_writes_is_read_by_fwknop(tmp_path):
    kf = tmp_path / "keyfile"
    kf.write_text("127.0.0.1: filekey\n")
    stanzas = {
        "a": ["-s", "-r", "-N", "10.213.48.5:22", "--nat-port", "2222", "-A", "tcp/22",
              "-S", "40001", "-P", "tcp", "-u", "agent/2", "--key-rijndael", "x",
              "--key-hmac", "y", "-D", "127.0.0.1", "-v", "--time-offset-plus", "1m"],
        "b": ["--nat-local", "--nat-rand-port", "-A", "tcp/22", "-a", "10.213.48.6",
              "-D", "127.0.0.1", "-G", str(kf), "-p", "40002", "-m", "md5"],
        "c": ["-R", "--resolve-url", "https://127.0.0.1:9/ip", "-A", "udp/53", "-D",
              "127.0.0.1", "--key-base64-rijndael", KEY_B64, "-a", "10.213.48.7"],
    }
    for name, args in stanzas.items():
        r = spa(tmp_path, "send", "-T", "-q", "--save-rc-stanza", "-n", name, *args)
        assert r.returncode == 0, (name, r.stderr)
    text = (tmp_path / ".fwknoprc").read_text()
    for var in ("ALLOW_IP", "RAND_PORT", "NAT_ACCESS", "NAT_PORT", "SPA_SOURCE_PORT",
                "SPA_SERVER_PROTO", "HTTP_USER_AGENT", "KEY", "HMAC_KEY", "VERBOSE",
                "TIME_OFFSET", "NAT_LOCAL", "NAT_RAND_PORT", "KEY_FILE", "SPA_SERVER_PORT",
                "DIGEST_TYPE", "RESOLVE_IP_HTTPS", "RESOLVE_URL", "KEY_BASE64"):
        assert re.search(r"^%s +\S" % var, text, re.M), var
    f = fields_of(real_fwknop(tmp_path, "-n", "a", "-T", "-v").stdout)
    assert f["message"] == "0.0.0.0,tcp/2222" and f["nat_access"] == "10.213.48.5,22"
    f = fields_of(real_fwknop(tmp_path, "-n", "b", "-T", "-v").stdout)
    assert f["type"].startswith("5 ") and f["digest"].endswith("(MD5)")
    # fwknop takes the key from the KEY_FILE spa-lite wrote: the packet opens with "filekey"
    w = real_fwknop(tmp_path, "-n", "b", "-T", "-v").stdout.split("Final SPA Data:")[1].split()[0]
    assert wire.parse(w, b"filekey", "cbc", None, "sha256").message.startswith("10.213.48.6,")
    # -a beats the saved -R for fwknop too; without it fwknop goes to the saved resolver
    assert fields_of(real_fwknop(tmp_path, "-n", "c", "-T", "-v").stdout)["message"] == \
        "10.213.48.7,udp/53"
    r = spa(tmp_path, "send", "--stanza-list")
    assert r.stdout.split() == ["a", "b", "c"]
    out = real_fwknop(tmp_path, "--stanza-list").stdout
    assert all(" - %s" % n in out for n in "abc")


@pytest.fixture(autouse=True)
def _no_default_rc_home(monkeypatch):
    monkeypatch.delenv("SPOOF_USER", raising=False)
