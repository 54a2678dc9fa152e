"""The spa-lite command line as a user (or cron) runs it: rc files, options, exit codes,
real sends over UDP (IPv4 and IPv6), TCP and HTTP on loopback, keygen and decode."""

import json
import os
import re
import socket
import stat
import subprocess
import threading
import time

import pytest
from hypothesis import given, settings, strategies as st

from spa_lite.client.rcfile import parse_rc_text
from spa_lite.core import wire
from spa_lite.core.b64 import b64decode_key
from tests.conftest import HMAC_KEY_B64, KEY_B64, need_tool, run_cli

K = b64decode_key(KEY_B64)
H = b64decode_key(HMAC_KEY_B64)
KEYS = ["--key-base64-rijndael", KEY_B64, "--key-base64-hmac", HMAC_KEY_B64]


def cli(tmp_path, *args, input="", **kw):
    """Run with an empty HOME (the real ~/.fwknoprc is never read) and stdin a pipe."""
    r = run_cli(*args, input=input, env={"HOME": str(tmp_path)}, **kw)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def send_t(tmp_path, *args):
    r = cli(tmp_path, "send", "-T", *args)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    return lines[0], r


def parsed(w, key=K, mode="cbc", hkey=H, hmac_type="sha256"):
    return wire.parse(w, key, mode, hkey, hmac_type)


# ------------------------------------------------------------------ rc files
RC = """# written by hand, fwknop style
[default]
KEY_BASE64          %s
HMAC_KEY_BASE64:    %s
DIGEST_TYPE         sha512
SPA_SERVER_PORT=40000

[home]
ACCESS              tcp/22
ALLOW_IP            10.213.5.5
SPA_SERVER  =  127.0.0.1
SPOOF_USER\tbob

[other]
KEY                 otherpass
ACCESS              udp/1194
ALLOW_IP            source
SPA_SERVER          127.0.0.1
""" % (KEY_B64, HMAC_KEY_B64)


def write_rc(tmp_path, text=RC, mode=0o600):
    p = tmp_path / ".fwknoprc"
    p.write_text(text)
    os.chmod(p, mode)
    return p


def test_rc_named_stanza_and_default(tmp_path):
    write_rc(tmp_path)
    w, _ = send_t(tmp_path, "-n", "home")
    m = parsed(w)
    assert (m.message, m.username, m.digest_type) == ("10.213.5.5,tcp/22", "bob", "sha512")


def test_rc_named_key_replaces_default_key_in_other_form(tmp_path):
    write_rc(tmp_path)
    w, _ = send_t(tmp_path, "-n", "other")
    m = parsed(w, key=b"otherpass")          # KEY from [other], HMAC key still from [default]
    assert m.message == "0.0.0.0,udp/1194"


def test_command_line_beats_rc(tmp_path):
    write_rc(tmp_path)
    w, _ = send_t(tmp_path, "-n", "home", "-A", "udp/53", "-U", "carol", "-m", "md5")
    m = parsed(w)
    assert (m.message, m.username, m.digest_type) == ("10.213.5.5,udp/53", "carol", "md5")


def test_rc_errors_name_file_and_line(tmp_path):
    rc = write_rc(tmp_path)
    r = cli(tmp_path, "send", "-T", "-n", "nosuch")
    assert r.returncode == 2 and str(rc) in r.stderr and "[nosuch]" in r.stderr
    write_rc(tmp_path, "[default\nKEY x\n")
    r = cli(tmp_path, "send", "-T", "-A", "tcp/1", "-a", "1.2.3.4")
    assert r.returncode == 2 and "%s:1:" % rc in r.stderr
    write_rc(tmp_path, "KEY x\n[default]\n")
    r = cli(tmp_path, "send", "-T", "-A", "tcp/1", "-a", "1.2.3.4")
    assert r.returncode == 2 and "%s:1:" % rc in r.stderr
    write_rc(tmp_path, "[default]\nUSE_GPG Y\n")
    r = cli(tmp_path, "send", "-T", "-A", "tcp/1", "-a", "1.2.3.4")
    assert r.returncode == 2 and "GnuPG" in r.stderr
    r = cli(tmp_path, "send", "-T", "--rc-file", str(tmp_path / "missing"), "-A", "tcp/1")
    assert r.returncode == 2 and "not found" in r.stderr


def test_rc_warnings(tmp_path):
    rc = write_rc(tmp_path, RC + "[home]\nFROBNICATE 1\nWGET_CMD /usr/bin/wget\n", mode=0o644)
    w, r = send_t(tmp_path, "-n", "home")
    assert "%s:%d: unknown variable FROBNICATE" % (rc, RC.count("\n") + 2) in r.stderr
    assert "WGET_CMD is not supported" in r.stderr
    assert "chmod 600" in r.stderr
    _, r = send_t(tmp_path, "-n", "home", "-q")
    assert r.stderr == ""


def test_rc_file_that_fwknop_itself_writes(tmp_path):
    exe = need_tool("fwknop")
    subprocess.run([exe, "--no-save-args", "-A", "tcp/22", "-a", "10.213.5.6", "-D", "127.0.0.1",
                    "-n", "saved", "--save-rc-stanza", "--force-stanza", "--key-base64-rijndael",
                    KEY_B64, "--key-base64-hmac", HMAC_KEY_B64, "--test"],
                   env=dict(os.environ, HOME=str(tmp_path)), capture_output=True, timeout=20)
    rc = (tmp_path / ".fwknoprc").read_text()
    assert "[saved]" in rc and "KEY_BASE64" in rc
    w, _ = send_t(tmp_path, "-n", "saved")
    assert parsed(w).message == "10.213.5.6,tcp/22"


names = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=12).filter(
    lambda s: s not in ("USE_GPG",))
values = st.text("abcdefghijklmnopqrstuvwxyz0123456789/+=.,:-", min_size=1, max_size=30).filter(
    lambda v: not v.startswith(("=", ":")))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text("abcdefghij", min_size=1, max_size=8),
                       st.dictionaries(st.sampled_from(sorted(["ACCESS", "ALLOW_IP", "KEY", "SPA_SERVER",
                                                               "DIGEST_TYPE", "FW_TIMEOUT"])),
                                       values, min_size=1), min_size=1, max_size=4),
       st.sampled_from([" ", "\t", "=", " = ", ": "]))
def test_rc_parser_roundtrip(stanzas, sep):
    text = "".join("[%s]\n%s" % (name, "".join("%s%s%s\n" % (k, sep, v) for k, v in vars_.items()))
                   for name, vars_ in stanzas.items())
    parsed_, warnings = parse_rc_text(text, "rc")
    assert warnings == []
    assert {n: {k: v.value for k, v in d.items()} for n, d in parsed_.items()} == stanzas


# ------------------------------------------------------------------ send options
def test_fields_from_options(tmp_path):
    w, _ = send_t(tmp_path, "--no-rc-file", "-A", "tcp/22,udp/53", "-a", "10.213.0.9", "-U", "al",
                  *KEYS)
    m = parsed(w)
    assert (m.message, m.username, m.message_type, m.version) == ("10.213.0.9,tcp/22,udp/53", "al", 1, "3.0.0")
    assert abs(m.timestamp - time.time()) < 5
    assert parsed(send_t(tmp_path, "--no-rc-file", "-A", "tcp/22", "-s", *KEYS)[0]).message == "0.0.0.0,tcp/22"
    assert parsed(send_t(tmp_path, "--no-rc-file", "-A", "tcp/22", "-a", "2001:db8::7", *KEYS)[0]).message == "2001:db8::7,tcp/22"


@pytest.mark.parametrize("opt,val,delta", [
    ("--time-offset-plus", "60", 60), ("--time-offset-minus", "5m", -300),
    ("--time-offset-plus", "2h", 7200), ("--time-offset-minus", "1d", -86400),
    ("--time-offset-plus", "60sec", 60)])
def test_time_offsets(tmp_path, opt, val, delta):
    m = parsed(send_t(tmp_path, "--no-rc-file", "-A", "tcp/1", "-a", "1.2.3.4", opt, val, *KEYS)[0])
    assert abs(m.timestamp - (time.time() + delta)) < 5


def test_timeout_nat_and_command_types(tmp_path):
    base = ["--no-rc-file", "-a", "10.213.0.9", "-D", "203.0.113.1"] + KEYS
    m = parsed(send_t(tmp_path, "-A", "tcp/22", "-f", "45", *base)[0])
    assert (m.message_type, m.client_timeout) == (3, 45)
    for nat in ("192.168.1.5:22", "192.168.1.5,22"):
        m = parsed(send_t(tmp_path, "-A", "tcp/22", "-N", nat, *base)[0])
        assert (m.message_type, m.nat_access) == (2, "192.168.1.5,22")
    m = parsed(send_t(tmp_path, "-A", "tcp/22", "-N", "h:22", "-f", "9", *base)[0])
    assert m.message_type == 4
    m = parsed(send_t(tmp_path, "-A", "tcp/22", "--nat-local", *base)[0])
    assert (m.message_type, m.nat_access, m.message) == (5, "203.0.113.1,22", "10.213.0.9,tcp/22")
    w, r = send_t(tmp_path, "-A", "tcp/22", "--nat-local", "--nat-rand-port", *base)
    m = parsed(w)
    port = int(m.message.split("/")[1])
    assert 10000 <= port <= 65534 and m.nat_access == "203.0.113.1,22"
    assert "Randomly assigned port %d" % port in r.stderr
    m = parsed(send_t(tmp_path, "-A", "tcp/22", "-N", "10.0.0.5:22", "--nat-port", "2222", *base)[0])
    assert m.message == "10.213.0.9,tcp/2222" and m.nat_access == "10.0.0.5,22"
    m = parsed(send_t(tmp_path, "-C", "uptime -p", *base)[0])
    assert (m.message_type, m.message) == (0, "10.213.0.9,uptime -p")


@pytest.mark.parametrize("mode,digest,hmac_type", [
    ("ctr", "sha3_512", "sha384"), ("ecb", "md5", "sha1"), ("ofb", "sha1", "md5"),
    ("cfb", "sha384", "sha3_256")])
def test_crypto_options(tmp_path, mode, digest, hmac_type):
    w, _ = send_t(tmp_path, "--no-rc-file", "-A", "tcp/1", "-a", "1.2.3.4", "-M", mode, "-m", digest,
                  "--hmac-digest-type", hmac_type, *KEYS)
    m = parsed(w, mode=mode, hmac_type=hmac_type)
    assert m.digest_type == digest


def test_passphrase_keys_and_legacy(tmp_path):
    w, _ = send_t(tmp_path, "--no-rc-file", "-A", "tcp/1", "-a", "1.2.3.4", "--key-rijndael", "pw",
                  "--key-hmac", "hk")
    assert parsed(w, key=b"pw", hkey=b"hk").message == "1.2.3.4,tcp/1"
    w, _ = send_t(tmp_path, "--no-rc-file", "-A", "tcp/1", "-a", "1.2.3.4", "-M", "legacy",
                  "--key-rijndael", "pw")
    assert wire.parse(w, b"pw", "legacy").message == "1.2.3.4,tcp/1"


@pytest.mark.parametrize("args,code,needle", [
    (["-A", "tcp/1", "-a", "1.2.3.4", "-M", "legacy", "--key-rijndael", "x", "--key-hmac", "y"], 2, "legacy"),
    (["-A", "tcp/1", "-a", "1.2.3.4"], 3, "no encryption key"),
    (["-A", "tcp/1", "-a", "1.2.3.4", "--key-rijndael", "x", "--use-hmac"], 3, "HMAC"),
    (["-A", "tcp/1", "-a", "1.2.3.4", "--key-base64-rijndael", "!!notb64"], 3, "base64"),
    (["-a", "1.2.3.4"] + KEYS, 2, "-A"),
    (["-A", "tcp/1"] + KEYS, 2, "allow IP"),
    (["-A", "tcp/1", "-a", "1.2.3.999"] + KEYS, 2, "-a/--allow-ip"),
    (["-A", "tcp/1", "-a", "1.2.3.4", "-p", "70000"] + KEYS, 2, "-p/--server-port"),
    (["-A", "foo/1", "-a", "1.2.3.4"] + KEYS, 2, "-A/--access"),
    (["-A", "tcp/1", "-a", "1.2.3.4", "-P", "udpraw"] + KEYS, 2, "not supported"),
    (["-A", "tcp/1", "-a", "1.2.3.4", "-U", "x" * 49] + KEYS, 2, "48 bytes"),
    (["-A", "tcp/1", "-a", "1.2.3.4", "-f", "65537"] + KEYS, 2, "-f/--fw-timeout"),
    (["-A", "tcp/1", "-a", "1.2.3.4", "-M", "pcbc"] + KEYS, 2, "encryption mode"),
    (["-A", "tcp/1", "-a", "1.2.3.4", "--time-offset-plus", "99999999"] + KEYS, 2, "offset"),
    (["-A", ",".join("tcp/%d" % p for p in range(10000, 10012)), "-a", "1.2.3.4",
      "--hmac-digest-type", "sha512"] + KEYS, 2, "too long"),
])
def test_errors_are_one_line_with_documented_codes(tmp_path, args, code, needle):
    r = cli(tmp_path, "send", "-T", "--no-rc-file", *args)
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr


def test_missing_destination_only_matters_when_sending(tmp_path):
    r = cli(tmp_path, "send", "--no-rc-file", "-A", "tcp/1", "-a", "1.2.3.4", *KEYS)
    assert r.returncode == 2 and "destination" in r.stderr


def test_no_prompt_without_a_terminal(tmp_path):
    r = run_cli("send", "--no-rc-file", "-T", "-A", "tcp/1", "-a", "1.2.3.4",
                env={"HOME": str(tmp_path)}, input=None, timeout=10)
    assert r.returncode == 3


def test_verbose_fields_match_fwknop_labels(tmp_path):
    exe = need_tool("fwknop")
    theirs = subprocess.run([exe, "--no-rc-file", "--no-save-args", "--test", "-v", "-A", "tcp/1",
                             "-a", "1.2.3.4", "-D", "127.0.0.1", *KEYS, "--use-hmac"],
                            capture_output=True, text=True, timeout=20).stdout
    labels = re.findall(r"^\s*([A-Za-z ]+):", theirs.split("Generating")[0], re.M)
    _, r = send_t(tmp_path, "--no-rc-file", "-A", "tcp/1", "-a", "1.2.3.4", "-v", *KEYS)
    ours = re.findall(r"^\s*([A-Za-z ]+):", r.stderr, re.M)
    assert ours == labels


def test_save_packet_is_private(tmp_path):
    out = tmp_path / "pkt"
    w, _ = send_t(tmp_path, "--no-rc-file", "-A", "tcp/1", "-a", "1.2.3.4", "-B", str(out), *KEYS)
    assert out.read_text() == w + "\n"
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


# ------------------------------------------------------------------ real sends on loopback
def udp_listener(family, host):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(10)
    return s


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_udp_send_delivers_exactly_the_wire(tmp_path, family, host):
    s = udp_listener(family, host)
    try:
        out = tmp_path / "pkt"
        r = cli(tmp_path, "send", "--no-rc-file", "-A", "tcp/22", "-a", "10.213.0.1", "-D", host,
                "-p", str(s.getsockname()[1]), "-B", str(out), *KEYS)
        assert r.returncode == 0, r.stderr
        data, _ = s.recvfrom(4096)
    finally:
        s.close()
    assert data == out.read_text().strip().encode() and not data.endswith(b"\n")
    assert parsed(data).message == "10.213.0.1,tcp/22"


def tcp_server(host="127.0.0.1"):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind((host, 0))
    srv.listen(1)
    srv.settimeout(10)
    got = {}

    def run():
        try:
            conn, _ = srv.accept()
            conn.settimeout(5)
            buf = b""
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                buf += chunk
            got["data"] = buf
            conn.close()
        except OSError as exc:
            got["error"] = exc
    t = threading.Thread(target=run)
    t.start()
    return srv, t, got


def test_tcp_and_http_transports(tmp_path):
    for proto in ("tcp", "http"):
        srv, t, got = tcp_server()
        try:
            out = tmp_path / ("pkt_" + proto)
            r = cli(tmp_path, "send", "--no-rc-file", "-A", "tcp/22", "-a", "10.213.0.2", "-D",
                    "127.0.0.1", "-p", str(srv.getsockname()[1]), "-P", proto, "-B", str(out), *KEYS)
            assert r.returncode == 0, r.stderr
            t.join(10)
        finally:
            srv.close()
        w = out.read_text().strip()
        if proto == "tcp":
            assert got["data"] == w.encode()
        else:
            req = got["data"].decode()
            path = w.replace("+", "-").replace("/", "_")
            assert req.startswith("GET /%s HTTP/1.1\r\n" % path)
            assert "\r\nUser-Agent: Fwknop" in req and "\r\nHost: 127.0.0.1\r\n" in req
            assert req.endswith("\r\n\r\n")


def test_network_errors_exit_4(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                # nothing listens there now
    r = cli(tmp_path, "send", "--no-rc-file", "-A", "tcp/1", "-a", "1.2.3.4", "-D", "127.0.0.1",
            "-p", str(port), "-P", "tcp", *KEYS)
    assert r.returncode == 4 and len(r.stderr.strip().splitlines()) == 1
    r = cli(tmp_path, "send", "--no-rc-file", "-A", "tcp/1", "-a", "1.2.3.4", "-D",
            "nonexistent.invalid", *KEYS)
    assert r.returncode == 4 and "resolve" in r.stderr


# ------------------------------------------------------------------ keygen and decode
KEYGEN_RE = r"KEY_BASE64: [A-Za-z0-9+/]{43}=\nHMAC_KEY_BASE64: [A-Za-z0-9+/]{86}==\n"


def test_keygen_matches_fwknop_format(tmp_path):
    exe = need_tool("fwknop")
    theirs = subprocess.run([exe, "--key-gen"], capture_output=True, text=True, timeout=20,
                            env=dict(os.environ, HOME=str(tmp_path))).stdout
    theirs = "".join(l for l in theirs.splitlines(True) if not l.startswith("[*]"))
    assert re.fullmatch(KEYGEN_RE, theirs)
    r = cli(tmp_path, "keygen")
    assert r.returncode == 0 and re.fullmatch(KEYGEN_RE, r.stdout)
    r2 = cli(tmp_path, "keygen")
    assert r2.stdout != r.stdout


def test_keygen_lengths_file_and_bounds(tmp_path):
    r = cli(tmp_path, "keygen", "--hmac-digest-type", "sha512")
    hk = r.stdout.splitlines()[1].split(": ")[1]
    assert len(b64decode_key(hk)) == 128
    r = cli(tmp_path, "keygen", "--key-len", "16", "--hmac-key-len", "20")
    key, hk = [l.split(": ")[1] for l in r.stdout.splitlines()]
    assert (len(b64decode_key(key)), len(b64decode_key(hk))) == (16, 20)
    assert cli(tmp_path, "keygen", "--key-len", "33").returncode == 2
    assert cli(tmp_path, "keygen", "--hmac-key-len", "129").returncode == 2
    f = tmp_path / "keys"
    r = cli(tmp_path, "keygen", "-K", str(f))
    assert r.stdout == "" and re.fullmatch(KEYGEN_RE, f.read_text())
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600


def test_keygen_qr(tmp_path):
    need_tool("qrencode")
    r = cli(tmp_path, "keygen", "--qr")
    assert r.returncode == 0 and "\u2588" in r.stdout
    bare = tmp_path / "bin"
    bare.mkdir()
    r = run_cli("keygen", "--qr", env={"HOME": str(tmp_path), "PATH": str(bare)})
    key, hk = [l.split(": ")[1] for l in r.stdout.splitlines()[:2]]
    assert "QR payload: KEY_BASE64:%s HMAC_KEY_BASE64:%s" % (key, hk) in r.stdout


def test_keygen_keys_work_end_to_end(tmp_path):
    key, hk = [l.split(": ")[1] for l in cli(tmp_path, "keygen").stdout.splitlines()]
    k = ["--key-base64-rijndael", key, "--key-base64-hmac", hk]
    w, _ = send_t(tmp_path, "--no-rc-file", "-A", "tcp/22", "-a", "1.2.3.4", *k)
    r = cli(tmp_path, "decode", "--no-rc-file", "--json", *k, w)
    assert json.loads(r.stdout)["message"] == "1.2.3.4,tcp/22"


def test_decode_json_stdin_and_rc_keys(tmp_path):
    w, _ = send_t(tmp_path, "--no-rc-file", "-A", "tcp/22", "-a", "1.2.3.4", "-f", "30", *KEYS)
    r = cli(tmp_path, "decode", "--no-rc-file", "--json", *KEYS, input=w + "\n")
    obj = json.loads(r.stdout)
    for key in ("rand", "user", "timestamp", "version", "type", "message", "nat_access",
                "server_auth", "client_timeout", "digest_type"):
        assert key in obj
    assert (obj["type"], obj["client_timeout"]) == (3, 30)
    write_rc(tmp_path)
    r = cli(tmp_path, "decode", "-n", "home", w)
    assert r.returncode == 0 and "Message String: 1.2.3.4,tcp/22" in r.stdout


@pytest.mark.parametrize("data,extra", [
    ("garbage", []), ("", []), ("A" * 200, []), ("*" * 200, []),
    (None, ["--key-rijndael", "wrong"]), (None, ["--hmac-digest-type", "sha512"])])
def test_decode_failures_exit_3_one_line(tmp_path, data, extra):
    if data is None:
        data = send_t(tmp_path, "--no-rc-file", "-A", "tcp/22", "-a", "1.2.3.4", *KEYS)[0]
    keys = KEYS if "--key-rijndael" not in extra else ["--key-base64-hmac", HMAC_KEY_B64]
    r = cli(tmp_path, "decode", "--no-rc-file", *keys, *extra, input=data)
    assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""


def test_version_and_no_command(tmp_path):
    r = cli(tmp_path, "--version")
    assert r.returncode == 0 and r.stdout.startswith("spa-lite ")
    r = cli(tmp_path)
    assert r.returncode == 2
