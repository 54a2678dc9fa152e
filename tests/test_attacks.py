"""Regressions from an attack run, each through the real server path (``spa-lite server
--pcap-file``) with packets from the real fwknop client where it matters:

- every re-encoding of a granted knock (16 first characters, '=', '==', spare bits, the
  salted prefix, case, the URL-safe alphabet), with and without HMAC, is never granted again;
- a no-HMAC stanza before the right one never costs a valid knock (a decode error once
  escaped and skipped the remaining stanzas);
- X-Forwarded-For (not covered by the HMAC) cannot put anything but a strict address literal
  into the command backend's argv or a log line.
"""

import os
import random
import re
import subprocess
import sys

from spa_lite.core import message, wire
from spa_lite.core.b64 import b64decode_key
from tests.conftest import HMAC_KEY_B64, KEY_B64, REPO, need_root
from tests.test_server_live import KEYS, Server, access_file, conf_file, fwknop_wire, write_capture

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
K = b64decode_key(KEY_B64)
H = b64decode_key(HMAC_KEY_B64)


def reencodings(w: str):
    """Every other text of ``w`` a base64 decoder would read as the same (or nearly the same)
    bytes, and the simple edits an attacker would try."""
    out = []
    low = ALPHABET.index(w[0]) & 3
    out += [ALPHABET[high << 2 | low] + w[1:] for high in range(16)
            if ALPHABET[high << 2 | low] != w[0]]                     # the 4 prefix bits
    out += [w + "=", w + "==", w + "=AAAA", "U2FsdGVkX1" + w]
    spare = {2: 0x0F, 3: 0x03}.get((len(w) + 10) % 4)                   # bits after the data
    if spare:
        i = ALPHABET.index(w[-1])
        out += [w[:-1] + ALPHABET[(i & ~spare) | s] for s in range(1, spare + 1)
                if (i & ~spare) | s != i]
    out += [w[:40] + w[40].swapcase() + w[41:] if w[40].isalpha() else w[:40] + "A" + w[41:],
            w.swapcase(), w.replace("+", "-").replace("/", "_")]
    return out


def fwknop_with_spare_bits(*args):
    for _ in range(12):                  # the length varies: find one with a partial group
        w = fwknop_wire(*args)
        if (len(w) + 10) % 4 in (2, 3):
            return w
    return w


def test_no_reencoding_of_a_granted_knock_is_granted_again(tmp_path):
    no_hmac = fwknop_with_spare_bits("--key-rijndael", "fwknoptest")
    with_hmac = fwknop_with_spare_bits(*KEYS, "--use-hmac")
    payloads = [no_hmac] + reencodings(no_hmac) + [with_hmac] + reencodings(with_hmac)
    assert len(payloads) > 2 * 20
    cap = str(tmp_path / "replays.pcap")
    write_capture(cap, [p.encode() for p in payloads])
    acc = access_file(tmp_path, "\nSOURCE ANY\nKEY fwknoptest\n")
    ev = Server(None, None, "-c", "/dev/null", "-a", acc, "-t", "--pcap-file", cap).events()
    assert len(ev) == len(payloads)
    granted = [i for i, e in enumerate(ev) if e["verdict"] == "grant"]
    assert granted == [0, 1 + len(reencodings(no_hmac))], [(e["verdict"], e["reason"]) for e in ev]


def test_a_no_hmac_stanza_first_never_costs_a_valid_knock(tmp_path):
    """Stanza 1 (no HMAC, another key) decrypts every knock to garbage; about 1 in 300 such
    plaintexts once raised UnicodeDecodeError and skipped stanza 2."""
    rnd = random.Random(9)
    knocks = []
    for i in range(3000):
        m = message.SpaMessage("%016d" % rnd.randrange(10 ** 16), "spauser", 1_700_000_000 + i,
                               1, "10.213.64.2,tcp/22")
        knocks.append(wire.build(m, K, bytes(rnd.randrange(256) for _ in range(8)), "cbc", H)
                      .encode())
    cap = str(tmp_path / "many.pcap")
    write_capture(cap, knocks)
    acc = tmp_path / "access.conf"
    acc.write_text("SOURCE ANY\nKEY otherkey\n\nSOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n"
                   % (KEY_B64, HMAC_KEY_B64))
    os.chmod(acc, 0o600)
    srv = Server(None, None, "-c", "/dev/null", "-a", str(acc), "-t", "--pcap-file", cap)
    ev = srv.events(timeout=120)
    assert [e["verdict"] for e in ev] == ["grant"] * 3000
    assert "0 internal errors" in "".join(srv.err)


EVIL = ["fe80::1%--evil-option", "fe80::1%$(id)", "fe80::1% ;reboot", "fe80::1%0a",
        "fe80::1%25eth0", "::1%\x1b[31mred", "10.213.64.9\rInjected: yes", "--evil-option",
        "10.213.64.09", " 10.213.64.9x", "fe80::1%eth0"]


def http_knock(xff: str, rand: str) -> bytes:
    m = message.SpaMessage(rand, "spauser", 1_700_000_000, 1, "0.0.0.0,tcp/22")
    spa = wire.build(m, K, os.urandom(8), "cbc", H).replace("+", "-").replace("/", "_")
    return ("GET /%s HTTP/1.1\r\nUser-Agent: Fwknop/2.6.10\r\nX-Forwarded-For: %s\r\n\r\n"
            % (spa, xff)).encode("latin-1")


def test_x_forwarded_for_reaches_the_command_backend_only_as_a_strict_literal(tmp_path):
    need_root()   # the command backend is a real firewall backend: it runs as root
    made = tmp_path / "made"
    made.mkdir()
    conf = conf_file(tmp_path, "ENABLE_SPA_OVER_HTTP Y\nENABLE_X_FORWARDED_FOR Y\n"
                     "FIREWALL_TYPE command\nCMD_CYCLE_OPEN /bin/mkdir -p %s/$IP\n"
                     "CMD_CYCLE_CLOSE NONE\n" % made)
    acc = access_file(tmp_path)
    payloads = [http_knock(x, "%016d" % (i + 1)) for i, x in enumerate(EVIL)]
    payloads.append(http_knock("10.213.64.77, 10.213.64.1", "%016d" % 99))
    cap = str(tmp_path / "xff.pcap")
    write_capture(cap, payloads)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        srv = Server(None, None, "-c", conf, "-a", acc, "-d", str(tmp_path / "d.cache"),
                     "--pcap-file", cap)
        ev = srv.events()
    finally:
        os.chdir(old)
    assert [e["verdict"] for e in ev] == ["reject"] * len(EVIL) + ["grant"]
    assert all("X-Forwarded-For" in e["reason"] for e in ev[:-1])
    assert ev[-1]["grant"]["address"] == "10.213.64.77"
    assert sorted(os.listdir(made)) == ["10.213.64.77"]          # nothing else was ever run
    assert os.listdir(cwd) == []                                   # no ';reboot' argument
    # and in the text log, every line stays one line of printable ASCII
    r = subprocess.run([sys.executable, "-m", "spa_lite", "server", "-f", "-c", conf, "-a", acc,
                        "-t", "--pcap-file", cap], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=REPO))
    lines = r.stderr.splitlines()
    assert len([l for l in lines if l.startswith("spa-lite[warning]: reject from")]) == len(EVIL)
    for line in lines:
        assert re.fullmatch(r"[ -~]*", line), repr(line)
    assert not any(l.startswith("Injected") for l in lines)
