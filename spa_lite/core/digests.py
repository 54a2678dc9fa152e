"""Digest and HMAC types, shared by the inner SPA digest and the outer HMAC.

fwknop never puts the type in the packet: the inner digest type is inferred from its base64
length (43 and 86 are each shared by a SHA-2 and a SHA-3 type, so both are tried) and the
HMAC type comes from configuration. HMAC is plain RFC 2104; we implement it here because
MicroPython has no ``hmac`` module, and use CPython's C ``hmac.digest`` when present because
the server computes one HMAC per packet and per stanza under floods.
"""

import hashlib
import sys

from spa_lite.core.b64 import b64encode
from spa_lite.core.errors import SpaError

# name: (fwknop id, base64 length without '=', hash block size in bytes)
DIGEST_TYPES = {
    "md5": (1, 22, 64),
    "sha1": (2, 27, 64),
    "sha256": (3, 43, 64),
    "sha384": (4, 64, 128),
    "sha512": (5, 86, 128),
    "sha3_256": (6, 43, 136),
    "sha3_512": (7, 86, 72),
}
DEFAULT_DIGEST = "sha256"
DEFAULT_HMAC = "sha256"

# Inferred digest candidates by base64 length, in fwknop's order (SHA-2 before SHA-3).
DIGESTS_BY_B64_LEN = {}
for _name in ("md5", "sha1", "sha256", "sha384", "sha512", "sha3_256", "sha3_512"):
    DIGESTS_BY_B64_LEN.setdefault(DIGEST_TYPES[_name][1], []).append(_name)

_fast_hmac = None
_fast_eq = None
_hmac_new = None
if sys.implementation.name != "micropython":
    try:
        from hmac import compare_digest as _fast_eq
        from hmac import digest as _fast_hmac
        from hmac import new as _hmac_new
    except ImportError:  # pragma: no cover - CPython always has them
        pass


def digest_name(text: str) -> str:
    """Normalise a user-given digest name (``SHA256``, ``sha3-256``...) or raise SpaError."""
    name = text.strip().lower().replace("-", "_")
    if name not in DIGEST_TYPES:
        raise SpaError("param", "unknown digest type %r (use one of %s)"
                       % (text, ", ".join(sorted(DIGEST_TYPES))))
    return name


def b64_len(name: str) -> int:
    """Length of the '='-stripped base64 form of a ``name`` digest."""
    return DIGEST_TYPES[name][1]


def _constructor(name: str):
    fn = getattr(hashlib, name, None)
    if fn is None and name == "md5":
        from spa_lite.core.md5 import MD5  # MicroPython ports without hashlib.md5
        fn = MD5
    if fn is None:
        raise SpaError("param", "digest %s is not available on this Python" % name)
    return fn


def hash_bytes(name: str, data: bytes) -> bytes:
    """Raw digest of ``data``. Each hash object is finalised once (MicroPython rule)."""
    return _constructor(name)(data).digest()


def hmac_bytes(name: str, key: bytes, data: bytes) -> bytes:
    """RFC 2104 HMAC of ``data`` under ``key`` with hash ``name``."""
    if _fast_hmac is not None:
        return _fast_hmac(key, data, name)
    new = _constructor(name)
    block = DIGEST_TYPES[name][2]
    if len(key) > block:
        key = new(key).digest()
    key = key + b"\x00" * (block - len(key))
    ipad = bytes([b ^ 0x36 for b in key])
    opad = bytes([b ^ 0x5C for b in key])
    inner = new(ipad + data).digest()
    return new(opad + inner).digest()


def hmac_function(name: str, key: bytes):
    """``data -> hmac_bytes(name, key, data)`` with the key schedule done once.

    The server computes one HMAC per packet and stanza: copying a keyed CPython hmac object
    costs about 1.2 us against 2.7 us for hmac.digest, which redoes the key each time.
    Elsewhere (MicroPython: hash objects cannot be copied) it is plain hmac_bytes."""
    if _hmac_new is None:
        return lambda data: hmac_bytes(name, key, data)
    base = _hmac_new(key, digestmod=name)

    def mac(data: bytes) -> bytes:
        h = base.copy()
        h.update(data)
        return h.digest()
    return mac


def hmac_b64(name: str, key: bytes, data: bytes) -> str:
    """HMAC as fwknop appends it: base64 with '=' stripped."""
    return b64encode(hmac_bytes(name, key, data))


def digest_b64(name: str, data: bytes) -> str:
    """Inner SPA digest as fwknop writes it: base64 with '=' stripped."""
    return b64encode(hash_bytes(name, data))


def equal(a, b) -> bool:
    """Constant-time comparison of two str or two bytes values (never returns early)."""
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    if _fast_eq is not None:
        return _fast_eq(a, b)
    diff = len(a) ^ len(b)
    if len(a) != len(b):
        b = a
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0
