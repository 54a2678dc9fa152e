"""Base64 the way fwknop uses it: standard alphabet, '=' padding stripped on output.

Decoding mirrors libfko: it stops at the first '=', accepts unpadded input and ignores the
trailing bits of a partial group, but rejects any character outside the alphabet (CPython's
binascii would silently skip them, which a strict parser must not).
"""

import binascii

from spa_lite.core.errors import SpaError

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_ALPHABET_EQ = ALPHABET + b"="   # made once: is_b64_text runs on every captured packet
_VALID = bytearray(256)
for _c in ALPHABET:
    _VALID[_c] = 1
_VALID_EQ = bytearray(_VALID)
_VALID_EQ[61] = 1  # '='


def b64encode(data: bytes) -> str:
    """Standard base64 of ``data`` with '=' padding removed (fwknop's ``strip_b64_eq``)."""
    return b64encode_bytes(data).decode()


def b64encode_bytes(data: bytes) -> bytes:
    """``b64encode`` as bytes, for comparing against received data without a decode."""
    return binascii.b2a_base64(data)[:-1].rstrip(b"=")


def b64encode_padded(data: bytes) -> str:
    """Padded base64, as fwknop writes keys (``KEY_BASE64``) and ``--key-gen`` output."""
    return binascii.b2a_base64(data)[:-1].decode()


def _all_in(data: bytes, table: bytearray) -> bool:
    for c in data:
        if not table[c]:
            return False
    return True


def is_b64_text(data: bytes) -> bool:
    """True if every byte is in ``[A-Za-z0-9+/=]`` (fwknopd's payload alphabet check)."""
    try:
        # CPython fast path: delete every valid byte; anything left is invalid.
        return not data.translate(None, _ALPHABET_EQ)
    except (AttributeError, TypeError):  # MicroPython has no bytes.translate
        return _all_in(data, _VALID_EQ)


def b64decode(text, what: str = "base64") -> bytes:
    """Decode fwknop-style base64 (str or bytes); raise SpaError naming ``what`` if invalid."""
    if isinstance(text, str):
        text = text.encode()
    cut = text.find(b"=")
    if cut >= 0:
        text = text[:cut]
    if not is_b64_text(text):
        raise SpaError("base64", "%s is not base64" % what)
    rem = len(text) % 4
    if rem == 1:
        raise SpaError("base64", "%s has an impossible base64 length" % what)
    if rem:
        text = text + b"=" * (4 - rem)
    try:
        return binascii.a2b_base64(text)
    except (ValueError, TypeError):  # binascii.Error is a ValueError subclass
        raise SpaError("base64", "%s is not base64" % what)


def b64decode_key(text: str, what: str = "key") -> bytes:
    """Decode a padded or unpadded base64 key from a config file or command line."""
    text = text.strip()
    if not text:
        raise SpaError("key", "%s is empty" % what)
    raw = text.encode()
    body = raw.rstrip(b"=")
    if b"=" in body or len(raw) - len(body) > 2:
        raise SpaError("key", "%s is not valid base64" % what)
    return b64decode(body, what)
