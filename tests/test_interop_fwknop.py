"""Interop with the real fwknop 2.6.10 (Debian packages), in both directions.

- fwknop client -> spa-lite: packets the real client builds, in every mode, digest and HMAC
  type, decode in spa-lite to exactly the fields fwknop printed.
- spa-lite -> fwknop: libfko (fwknop's own library, via ctypes) decodes spa-lite packets for
  a hypothesis-driven spread of messages, and a real fwknopd (UDP-server mode on loopback,
  CMD_CYCLE stanzas so no firewall is touched) accepts packets sent by `spa-lite send`.
"""

import itertools
import os
import re
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from spa_lite.core import message, wire
from spa_lite.core.b64 import b64decode_key
from spa_lite.core.errors import SpaError
from tests import libfko
from tests.netns import stop_process
from tests.conftest import HMAC_KEY_B64, KEY_B64, need_tool, run_cli

K = b64decode_key(KEY_B64)
H = b64decode_key(HMAC_KEY_B64)
MODES = ["cbc", "ecb", "cfb", "ofb", "ctr"]
DIGESTS = ["md5", "sha1", "sha256", "sha384", "sha512", "sha3_256", "sha3_512"]
LABELS = {"Random Value": "rand", "Username": "user", "Timestamp": "timestamp",
          "FKO Version": "version", "Message Type": "type", "Message String": "message",
          "Nat Access": "nat_access", "Client Timeout": "client_timeout",
          "Digest Type": "digest", "Final SPA Data": "wire"}


def fwknop(*args):
    """Run the real client in test mode; return the fields of its first 'SPA Field Values'."""
    exe = need_tool("fwknop")
    r = subprocess.run([exe, "--no-rc-file", "--no-save-args", "--test", "-v", "-D", "127.0.0.1",
                        "-U", "spauser"] + list(args), capture_output=True, text=True, timeout=20,
                       env=dict(os.environ, HOME="/nonexistent"))
    assert r.returncode == 0, r.stdout + r.stderr
    out = {}
    for line in r.stdout.split("Generating SPA packet")[0].splitlines():
        m = re.match(r"\s*([A-Za-z ]+): (.*)$", line)
        if m and m.group(1).strip() in LABELS:
            out[LABELS[m.group(1).strip()]] = m.group(2).strip()
    return out


def check_same(fields, m):
    assert m.rand_value == fields["rand"]
    assert m.username == fields["user"]
    assert str(m.timestamp) == fields["timestamp"]
    assert m.version == fields["version"]
    assert fields["type"].startswith("%d " % m.message_type)
    assert m.message == fields["message"]
    assert (m.nat_access or "<NULL>") == fields["nat_access"]
    assert str(m.client_timeout or 0) == fields["client_timeout"]
    assert fields["digest"].lower().endswith("(%s)" % m.digest_type)


KEYS_B64 = ["--key-base64-rijndael", KEY_B64, "--key-base64-hmac", HMAC_KEY_B64]


@pytest.mark.parametrize("mode,digest", list(itertools.product(MODES, DIGESTS)))
def test_fwknop_packets_decode_every_mode_and_digest(mode, digest):
    hmac_type = DIGESTS[(MODES.index(mode) + DIGESTS.index(digest)) % len(DIGESTS)]
    f = fwknop("-A", "tcp/22", "-a", "10.213.1.1", "-M", mode, "-m", digest,
               "--hmac-digest-type", hmac_type, "--use-hmac", *KEYS_B64)
    check_same(f, wire.parse(f["wire"], K, mode, H, hmac_type))


@pytest.mark.parametrize("hmac_type", DIGESTS)
def test_fwknop_every_hmac_type_with_passphrase_keys(hmac_type):
    f = fwknop("-A", "tcp/22,udp/53", "-a", "10.213.1.2", "--key-rijndael", "fwknoptest",
               "--key-hmac", "hmactest", "--hmac-digest-type", hmac_type)
    check_same(f, wire.parse(f["wire"], b"fwknoptest", "cbc", b"hmactest", hmac_type))


@pytest.mark.parametrize("args", [
    ["-A", "tcp/22", "-a", "10.213.1.3", "-N", "192.168.10.5:22"],
    ["-A", "tcp/22", "-a", "10.213.1.3", "-N", "192.168.10.5:22", "-f", "60"],
    ["-A", "tcp/22", "-a", "10.213.1.3", "--nat-local"],
    ["-A", "tcp/22", "-a", "10.213.1.3", "--nat-local", "--nat-rand-port", "-f", "45"],
    ["-A", "tcp/22", "-a", "10.213.1.3", "--nat-local", "--nat-port", "55000"],
    ["-A", "tcp/22", "-s"],
    ["-A", "tcp/22", "-a", "10.213.1.3", "-f", "65536"],
    ["-C", "echo hello world", "-a", "10.213.1.3"],
    ["-A", "tcp/22", "-a", "10.213.1.3", "--time-offset-minus", "5m"],
], ids=["nat", "nat-timeout", "nat-local", "nat-rand-port", "nat-port", "source", "max-timeout",
        "command", "offset"])
def test_fwknop_message_types_decode(args):
    f = fwknop(*(args + KEYS_B64))
    check_same(f, wire.parse(f["wire"], K, "cbc", H))


def test_fwknop_legacy_mode_decodes():
    f = fwknop("-A", "tcp/22", "-a", "10.213.1.4", "-M", "legacy", "--key-rijndael", "fwknoptest")
    check_same(f, wire.parse(f["wire"], b"fwknoptest", "legacy"))


def test_spa_lite_decode_cli_on_a_fwknop_packet():
    f = fwknop("-A", "udp/1194", "-a", "10.213.1.5", "-M", "ofb", "-m", "sha3_256",
               "--hmac-digest-type", "sha512", "--use-hmac", *KEYS_B64)
    r = run_cli("decode", "--no-rc-file", "-M", "ofb", "--hmac-digest-type", "sha512",
                "--json", *KEYS_B64, f["wire"])
    assert r.returncode == 0, r.stderr
    import json
    obj = json.loads(r.stdout)
    assert (obj["message"], obj["digest_type"], obj["rand"]) == (
        "10.213.1.5,udp/1194", "sha3_256", f["rand"])


# ------------------------------------------------------------------ spa-lite -> libfko
@pytest.fixture(scope="module")
def lib():
    lib = libfko.load()
    if lib is None:
        pytest.skip("libfko.so.3 is not installed (fwknop-client; the test command installs it)")
    return lib


ipv4 = st.tuples(*[st.integers(1, 254)] * 4).map(lambda t: "%d.%d.%d.%d" % t)


@st.composite
def fwknop_messages(draw):
    mtype = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6]))
    allow = draw(ipv4)
    if mtype == 0:
        text = allow + "," + draw(st.sampled_from(["echo hi", "/usr/bin/id -u", "true"]))
    else:
        ports = draw(st.lists(st.tuples(st.sampled_from(["tcp", "udp"]), st.integers(1, 65535)),
                              min_size=1, max_size=3))
        text = allow + "," + ",".join("%s/%d" % p for p in ports)
    nat = "%s,%d" % (draw(ipv4), draw(st.integers(1, 65535))) if mtype in (2, 4, 5, 6) else None
    timeout = draw(st.integers(1, 65536)) if mtype in (3, 4, 6) else None
    user = draw(st.text("abcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=20))
    auth = draw(st.one_of(st.none(), st.just("crypt,secret")))
    return message.SpaMessage(draw(st.text("0123456789", min_size=16, max_size=16)), user,
                              draw(st.integers(0, 2 ** 31 - 1)), mtype, text, nat, auth, timeout,
                              "3.0.0", draw(st.sampled_from(DIGESTS)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fwknop_messages(), st.sampled_from(MODES), st.sampled_from(DIGESTS),
       st.binary(min_size=1, max_size=32), st.binary(min_size=1, max_size=128),
       st.binary(min_size=8, max_size=8))
def test_libfko_decodes_spa_lite_packets(lib, m, mode, hmac_type, key, hkey, salt):
    if hkey == key:
        return
    try:
        w = wire.build(m, key, salt, mode, hkey, hmac_type)
    except SpaError as exc:
        assert exc.code == "length"
        return
    d = libfko.decode(lib, w, key, mode, hkey, hmac_type)
    assert (d["rand"], d["user"], d["timestamp"], d["version"], d["type"], d["message"]) == (
        m.rand_value, m.username, m.timestamp, m.version, m.message_type, m.message)
    assert d["nat_access"] == m.nat_access and d["server_auth"] == m.server_auth
    assert d["client_timeout"] == (m.client_timeout or 0) and d["digest"] == m.digest_type


def test_libfko_legacy_mode(lib):
    m = message.SpaMessage("1234567890123456", "u", 1700000000, 1, "10.0.0.1,tcp/22")
    w = wire.build(m, b"fwknoptest", bytes(8), "legacy")
    assert libfko.decode(lib, w, b"fwknoptest", "legacy")["message"] == "10.0.0.1,tcp/22"


@pytest.mark.parametrize("m", [
    message.SpaMessage("1234567890123456", "u", 2 ** 31, 1, "10.0.0.1,tcp/22"),
    message.SpaMessage("1234567890123456", "u", 1700000000, 1, "2001:db8::1,tcp/22"),
], ids=["timestamp-2038", "ipv6-allow-ip"])
def test_deliberate_fixes_are_what_fwknop_2_6_rejects(lib, m):
    w = wire.build(m, K, bytes(8), "cbc", H)
    assert wire.parse(w, K, "cbc", H) == m
    with pytest.raises(libfko.FkoError):
        libfko.decode(lib, w, K, "cbc", H)


# ------------------------------------------------------------------ spa-lite -> fwknopd
class Fwknopd:
    def __init__(self, tmp, port):
        self.tmp, self.port = tmp, port
        self.log = os.path.join(tmp, "fwknopd.log")

    def opened(self, tag, timeout=5.0):
        path = os.path.join(self.tmp, "opened_" + tag)
        end = time.time() + timeout
        while time.time() < end:
            if os.path.exists(path):
                return True
            time.sleep(0.05)
        return False

    def text(self):
        return open(self.log).read()


def free_udp_port():
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


STANZA_MODES = MODES
STANZA_HMACS = DIGESTS


@pytest.fixture(scope="module")
def fwknopd(tmp_path_factory):
    exe = need_tool("fwknopd")
    tmp = str(tmp_path_factory.mktemp("fwknopd"))
    port = free_udp_port()
    conf = os.path.join(tmp, "fwknopd.conf")
    with open(conf, "w") as fh:
        fh.write("ENABLE_UDP_SERVER Y;\nUDPSERV_PORT %d;\nFWKNOP_RUN_DIR %s;\n"
                 "MAX_SPA_PACKET_AGE 120;\n" % (port, tmp))
    stanzas = []
    for mode, hmac_type in itertools.product(STANZA_MODES, STANZA_HMACS):
        stanzas.append("SOURCE 127.0.0.1\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nENCRYPTION_MODE %s\n"
                       "HMAC_DIGEST_TYPE %s\n" % (KEY_B64, HMAC_KEY_B64, mode, hmac_type) +
                       "CMD_CYCLE_OPEN /usr/bin/touch %s/opened_%s_%s_$IP_$PORT\nCMD_CYCLE_CLOSE NONE\n"
                       % (tmp, mode, hmac_type))
    stanzas.append("SOURCE 127.0.0.1\nKEY fwknoptest\nENCRYPTION_MODE legacy\n"
                   "CMD_CYCLE_OPEN /usr/bin/touch %s/opened_legacy_none_$IP_$PORT\n"
                   "CMD_CYCLE_CLOSE NONE\n" % tmp)
    access = os.path.join(tmp, "access.conf")
    with open(access, "w") as fh:
        fh.write("\n".join(stanzas))
    os.chmod(conf, 0o600)
    os.chmod(access, 0o600)
    d = Fwknopd(tmp, port)
    log = open(d.log, "w")
    proc = subprocess.Popen([exe, "-f", "-U", "-c", conf, "-a", access, "-d",
                             os.path.join(tmp, "digest.cache"), "-p", os.path.join(tmp, "pid")],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        end = time.time() + 10
        while "Kicking off UDP server" not in d.text() and time.time() < end:
            assert proc.poll() is None, d.text()
            time.sleep(0.05)
        yield d
    finally:
        stop_process(proc)
        log.close()


CASES = [(mode, hmac_type, DIGESTS[i % len(DIGESTS)])
         for i, (mode, hmac_type) in enumerate(itertools.product(STANZA_MODES, STANZA_HMACS))]


@pytest.mark.parametrize("mode,hmac_type,digest", CASES)
def test_fwknopd_accepts_spa_lite_send(fwknopd, mode, hmac_type, digest):
    idx = CASES.index((mode, hmac_type, digest))
    allow = "10.213.7.%d" % (idx + 1)
    r = run_cli("send", "--no-rc-file", "-A", "tcp/%d" % (2000 + idx), "-a", allow, "-D", "127.0.0.1",
                "-p", str(fwknopd.port), "-M", mode, "-m", digest, "--hmac-digest-type", hmac_type,
                *KEYS_B64)
    assert r.returncode == 0, r.stderr
    assert fwknopd.opened("%s_%s_%s_%d" % (mode, hmac_type, allow, 2000 + idx)), fwknopd.text()[-3000:]


def test_fwknopd_accepts_legacy_timeout_and_v3_types(fwknopd):
    r = run_cli("send", "--no-rc-file", "-A", "tcp/4444", "-a", "10.213.8.1", "-D", "127.0.0.1",
                "-p", str(fwknopd.port), "-M", "legacy", "--key-rijndael", "fwknoptest")
    assert r.returncode == 0, r.stderr
    assert fwknopd.opened("legacy_none_10.213.8.1_4444"), fwknopd.text()[-2000:]
    r = run_cli("send", "--no-rc-file", "-A", "tcp/4445", "-a", "10.213.8.2", "-D", "127.0.0.1",
                "-p", str(fwknopd.port), "-f", "77", *KEYS_B64)
    assert r.returncode == 0, r.stderr
    assert fwknopd.opened("cbc_sha256_10.213.8.2_4445"), fwknopd.text()[-2000:]


def test_fwknopd_detects_replay_and_wrong_key(fwknopd, tmp_path):
    pkt = tmp_path / "pkt"
    r = run_cli("send", "--no-rc-file", "-A", "tcp/5555", "-a", "10.213.9.1", "-D", "127.0.0.1",
                "-p", str(fwknopd.port), "-B", str(pkt), *KEYS_B64)
    assert r.returncode == 0 and fwknopd.opened("cbc_sha256_10.213.9.1_5555")
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(pkt.read_text().strip().encode(), ("127.0.0.1", fwknopd.port))
    s.close()
    end = time.time() + 5
    while "Replay detected" not in fwknopd.text() and time.time() < end:
        time.sleep(0.05)
    assert "Replay detected" in fwknopd.text()
    r = run_cli("send", "--no-rc-file", "-A", "tcp/6666", "-a", "10.213.9.2", "-D", "127.0.0.1",
                "-p", str(fwknopd.port), "--key-rijndael", "wrong", "--key-hmac", "alsowrong")
    assert r.returncode == 0
    assert not fwknopd.opened("cbc_sha256_10.213.9.2_6666", timeout=1.0)
