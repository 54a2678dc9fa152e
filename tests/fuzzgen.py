"""Deterministic packet fuzzer shared by tests/test_fuzz.py (bounded, in CI) and
scripts/fuzz (a million packets or more, before a release).

``cases(seed, count, bases)`` yields ``(frame, intended, required)``: an Ethernet frame for a
pcap file; for the few packets that may be granted, the access text the grant carries (None
for everything else: never granted); and whether the grant is required (a valid knock in a
normal frame) or only allowed (a valid knock in an odd frame). ``bases`` are real fwknop client packets; the server config the
fuzzer is run against is ``ACCESS``/``CONF`` below (one HMAC stanza, one without HMAC, SPA
over HTTP with X-Forwarded-For, so every path is reached).
"""

import random
import struct

from spa_lite.core import message, wire
from spa_lite.core.b64 import b64decode_key, b64encode
from spa_lite.core.digests import digest_b64
from spa_lite.server.pcapfile import build_frame, build_ip_packet

KEY_B64 = "ZI/zjd2XLBRr5lUfFqyr32R3FNpnwAOi1sVKALSr1NY="
HMAC_KEY_B64 = ("tIkAO6Ca/aMkMoHAEEpLlasQECpAWkcxGtdQvJyrT8mzQOlHUblT8I+omiX2lQ84iQwHYGgpb"
                "tFtFlriRlX0pQ==")
NOHMAC_KEY = "fwknoptest"
K = b64decode_key(KEY_B64)
H = b64decode_key(HMAC_KEY_B64)
ACCESS = ("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n\nSOURCE ANY\nKEY %s\n"
          % (KEY_B64, HMAC_KEY_B64, NOHMAC_KEY))
CONF = "ENABLE_SPA_OVER_HTTP Y\nENABLE_X_FORWARDED_FOR Y\n"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
SRC, DST, PORT = "10.213.70.2", "10.213.70.1", 62201

# Field values that are certainly invalid (a plaintext with one of them is never granted)
BAD = {
    "rand": ["123", "12345678901234567", "abcdefghijklmnop", "-234567890123456", "",
             "123456789012345\x00", "１２３４５６７８９０１２３４５６"],
    "user": ["", "a\nb", "a:b", "x;reboot", "a\x00b", "a" * 60, "\x1b[31m", "a|b"],
    "ts": ["-1", "99999999999999", "1e9", "", "1700000000\n", "0x10", "\x00"],
    "version": ["123456789", "", "3.0.0\n3"],
    "type": ["7", "99", "-1", "a", "", "1 ", "\x00"],
    "msg": ["10.0.0.1;reboot,tcp/22", "$(id),tcp/22", "10.0.0.1,tcp/0", "10.0.0.1,tcp/99999",
            "10.0.0.1,tcp/-1", "fe80::1%eth0,tcp/22", "10.0.0.1\n,tcp/22", "10.0.0.1,ftp/21",
            "--evil-option,tcp/22", "10.0.0.1", "0.0.0.0,tcp/22\x00", "", ",", "1.2.3.4,",
            "010.0.0.1,tcp/22", "10.0.0.1,tcp/22,", "10.0.0.1,tcp/22/1"],
    "timeout": ["-5", "99999999", "x", "", "65537"],
}
SHELLISH = ["$(id)", "`id`", ";reboot", "|sh", "&&", "\n", "\r", "\x00", "\x1b]0;x\x07",
            "%0a", "'", "\"", "\\", "*", "..", "\u2028", "\xff"]


def _b64(text: str) -> str:
    return b64encode(text.encode("utf-8", "surrogatepass"))


def hostile_plaintext(rnd: random.Random) -> str:
    """A plaintext with at least one certainly-invalid field and random other oddities; the
    inner digest is right most of the time, so decoding reaches the field checks."""
    f = {"rand": "%016d" % rnd.randrange(10 ** 16), "user": "spauser", "ts": "1700000000",
         "version": "3.0.0", "type": "1", "msg": "10.213.70.2,tcp/22"}
    if rnd.random() < 0.3:                     # odd but maybe valid (fwknop allows `$(&)`)
        f["user"] += rnd.choice(SHELLISH)
    for name in rnd.sample(["rand", "user", "ts", "version", "type", "msg"], rnd.randint(1, 3)):
        f[name] = rnd.choice(BAD[name])
    parts = [f["rand"], _b64(f["user"]), f["ts"], f["version"], f["type"], _b64(f["msg"])]
    extra = rnd.random()
    if extra < 0.2:
        parts.append(_b64(rnd.choice(["host;reboot,22", "$(id),1", "10.0.0.1,0", "a" * 80 + ",1"])))
    elif extra < 0.4:
        parts.append(rnd.choice(BAD["timeout"]))
    elif extra < 0.5:
        parts += [_b64(rnd.choice(SHELLISH)), "30"]
    text = ":".join(parts)
    if rnd.random() < 0.8:
        return text + ":" + digest_b64(rnd.choice(["sha256", "md5", "sha512"]), text.encode("utf-8", "surrogatepass"))
    return text + ":" + rnd.choice(["", "x" * 43, "A" * 22, "\x00" * 43])


def seal_any(rnd: random.Random, text: str, hmac: bool):
    """Encrypt a plaintext (any length the encoder allows) under the fuzz keys; None if the
    encoder refuses it (too long, not encodable)."""
    raw = text.encode("utf-8", "surrogatepass")
    if not 36 <= len(raw) < 1500:
        return None
    from spa_lite.core.cipher import encrypt_salted
    salt = bytes(rnd.randrange(256) for _ in range(8))
    if hmac:
        full = b64encode(encrypt_salted(raw, K, salt, "cbc"))
        from spa_lite.core.digests import hmac_b64
        return full[10:] + hmac_b64("sha256", H, full.encode())
    full = b64encode(encrypt_salted(raw, NOHMAC_KEY.encode(), salt, "cbc"))
    return full[10:]


def mutate(rnd: random.Random, w: str) -> bytes:
    """One edit of a real packet: bit flips, truncation, extension, '=' padding, the salted
    prefix, case and alphabet changes, first-character and spare-bit re-encodings."""
    op = rnd.randrange(11)
    if op == 0:
        b = bytearray(w.encode())
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        return bytes(b)
    if op == 1:
        return w[:rnd.randrange(len(w))].encode()
    if op == 2:
        return (w + "".join(rnd.choice(ALPHABET + "=") for _ in range(rnd.randint(1, 300)))).encode()
    if op == 3:
        return (w + "=" * rnd.randint(1, 4) + rnd.choice(["", "AAAA", "\n", "=="])).encode()
    if op == 4:
        return ("U2FsdGVkX1" + w).encode()
    if op == 5:
        i = rnd.randrange(len(w))
        return (w[:i] + w[i].swapcase() + w[i + 1:]).encode()
    if op == 6:
        return w.replace("+", "-").replace("/", "_").encode()
    if op == 7:
        low = ALPHABET.index(w[0]) & 3
        return (ALPHABET[rnd.randrange(16) << 2 | low] + w[1:]).encode()
    if op == 8:
        i = ALPHABET.index(w[-1])
        return (w[:-1] + ALPHABET[(i & ~0x0F) | rnd.randrange(16)]).encode()
    if op == 9:
        i = rnd.randrange(len(w))
        return (w[:i] + rnd.choice(ALPHABET) + w[i + 1:]).encode()
    return w.swapcase().encode()


def http(rnd: random.Random, spa: bytes) -> bytes:
    xff = rnd.choice(["10.213.70.9", "fe80::1%--evil-option", "$(id)", "1.2.3.4\r;reboot",
                      "::1%\x1b[2J", "%0a", "", "10.213.70.09", "a" * 200])
    head = b"GET /" + spa.replace(b"+", b"-").replace(b"/", b"_") + b" HTTP/1.1\r\n"
    return head + b"User-Agent: Fwknop/2.6.10\r\nX-Forwarded-For: " + xff.encode("latin-1") + b"\r\n\r\n"


def odd_frame(rnd: random.Random, payload: bytes) -> bytes:
    """Frame-level oddities: IP options, fragments, IPv6 extension headers, VLAN tags,
    lying length fields, truncation."""
    op = rnd.randrange(7)
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"
    if op == 0:                                            # IPv4 options
        ip = bytearray(build_ip_packet(SRC, DST, 40000, PORT, payload))
        words = rnd.randint(1, 10)
        opts = bytes(rnd.randrange(256) for _ in range(4 * words))
        ip = bytes([0x40 | (5 + words)]) + ip[1:2] + struct.pack("!H", len(ip) + len(opts)) + \
            ip[4:20] + opts + ip[20:]
        return eth + b"\x08\x00" + ip
    if op == 1:                                            # IPv4 fragment (MF or offset)
        ip = bytearray(build_ip_packet(SRC, DST, 40000, PORT, payload))
        ip[6:8] = struct.pack("!H", rnd.choice([0x2000, 0x0001, 0x2010, 0x1fff]))
        return eth + b"\x08\x00" + bytes(ip)
    if op == 2:                                            # IPv6 extension header chain
        l4 = struct.pack("!HHHH", 40000, PORT, 8 + len(payload), 0) + payload
        chain, nxt = b"", 17
        for ext in reversed([rnd.choice([0, 43, 60, 44, 51, 59]) for _ in range(rnd.randint(1, 9))]):
            if ext == 44:
                chain = struct.pack("!BBHI", nxt, 0, rnd.choice([0, 1, 8]), 7) + chain
            else:
                n = rnd.randint(0, 3)
                chain = struct.pack("!BB", nxt, n) + bytes(6 + 8 * n) + chain
            nxt = ext
        ip = struct.pack("!IHBB16s16s", 0x60000000, len(chain) + len(l4), nxt, 64,
                         b"\xfd\x13" + bytes(13) + b"\x02", b"\xfd\x13" + bytes(13) + b"\x01")
        return eth + b"\x86\xdd" + ip + chain + l4
    if op == 3:                                            # VLAN, QinQ
        f = build_frame(SRC, DST, 40000, PORT, payload, vlan=rnd.randrange(4096))
        if rnd.random() < 0.5:
            f = f[:12] + struct.pack("!HH", 0x88A8, rnd.randrange(4096)) + f[12:]
        return f
    if op == 4:                                            # lying lengths
        f = bytearray(build_frame(SRC, DST, 40000, PORT, payload))
        which = rnd.choice([16, 38, 14])
        f[which:which + 2] = struct.pack("!H", rnd.randrange(65536))
        if which == 14:
            f[14] = rnd.randrange(256)
        return bytes(f)
    if op == 5:                                            # truncated frame
        f = build_frame(SRC, DST, 40000, PORT, payload)
        return f[:rnd.randrange(len(f))]
    return bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 200)))   # not a frame


def fresh_knock(rnd: random.Random, n: int, hmac: bool):
    """A valid knock that must be granted, and its access text."""
    access = "10.213.%d.%d,tcp/22" % (100 + n // 250 % 100, n % 250 + 1)
    m = message.SpaMessage("%016d" % rnd.randrange(10 ** 16), "spauser", 1_700_000_000, 1, access)
    salt = bytes(rnd.randrange(256) for _ in range(8))
    if hmac:
        return wire.build(m, K, salt, "cbc", H), access
    return wire.build(m, NOHMAC_KEY.encode(), salt, "cbc"), access


def cases(seed: int, count: int, bases):
    """``count`` (frame, intended access or None), deterministic for a seed."""
    rnd = random.Random(seed)
    for w, access in bases:                   # each real packet once: granted
        yield build_frame(SRC, DST, 40000, PORT, w.encode()), access, True
    plain = [w for w, _ in bases]
    for n in range(count):
        kind = rnd.random()
        intended = None
        if kind < 0.10:
            payload = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 1600)))
        elif kind < 0.22:
            payload = "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(100, 1500))).encode()
            if rnd.random() < 0.3:
                payload = rnd.choice("89+/").encode() + payload[1:]
        elif kind < 0.62:
            payload = mutate(rnd, rnd.choice(plain))
        elif kind < 0.85:
            w = seal_any(rnd, hostile_plaintext(rnd), rnd.random() < 0.6)
            payload = w.encode() if w else b"x"
        elif kind < 0.87:
            w, intended = fresh_knock(rnd, n, rnd.random() < 0.5)
            payload = w.encode()
        else:
            payload = rnd.choice(plain).encode()   # an exact replay
        if rnd.random() < 0.08:
            payload = http(rnd, payload)     # the allow IP is explicit: XFF plays no part
        if rnd.random() < 0.08:
            yield odd_frame(rnd, payload), intended, False
        else:
            yield build_frame(SRC, DST, 40000 + n % 20000, PORT, payload), intended, \
                intended is not None
