"""SPA wire text: ``B64(Salted__||salt||AES(plaintext))`` minus the ``U2FsdGVkX1`` prefix,
followed directly by ``B64(HMAC(prefix + ciphertext text))``; all base64 without '='.

``seal``/``build`` go from plaintext/message to wire text; ``unseal``/``parse`` go back,
checking the HMAC (constant time) before any decryption, then the 16-digit random gate that
is fwknop's only wrong-key detector. Salt and all other inputs come from the caller.
"""

from spa_lite.core import fields, limits, message
from spa_lite.core.b64 import b64decode, b64encode, b64encode_bytes, is_b64_text
from spa_lite.core.cipher import DEFAULT_MODE, decrypt_salted, encrypt_salted
from spa_lite.core.digests import DEFAULT_HMAC, b64_len, equal, hmac_b64, hmac_bytes
from spa_lite.core.errors import SpaError

PREFIX = limits.B64_RIJNDAEL_SALT
_PREFIX_B = PREFIX.encode()
# The stripped prefix covers 60 of the 64 bits of "Salted__"; the first wire character
# carries the last 4 (all ones: '_' is 0x5F) above 2 bits of the salt. So a real encoder's
# first character is one of these four, and any other is a re-encoding the decoder would
# silently accept (the magic is not checked): 16 encodings of one packet, a replay bypass
# for stanzas without HMAC.
FIRST_CHARS = b"89+/"


def first_char_ok(wire: bytes) -> bool:
    """Whether the first wire character completes the salted prefix as an encoder makes it."""
    return len(wire) > 0 and wire[0] in FIRST_CHARS


def _all_digits(raw: bytes) -> bool:
    """``fields.is_digits`` on bytes, without a decode that could raise on non-UTF-8."""
    if not raw:
        return False
    for c in raw:
        if c < 48 or c > 57:
            return False
    return True


def _check_keys(key: bytes, hmac_key, mode: str) -> None:
    if hmac_key is not None:
        if mode == "legacy":
            raise SpaError("param", "legacy encryption mode is incompatible with HMAC")
        if not hmac_key:
            raise SpaError("key", "the HMAC key is empty")
        if len(hmac_key) > limits.MAX_HMAC_KEY_LEN:
            raise SpaError("key", "the HMAC key is longer than %d bytes" % limits.MAX_HMAC_KEY_LEN)
        if hmac_key == key:
            raise SpaError("key", "the encryption and HMAC keys must not be identical")


def seal(plaintext: str, key: bytes, salt: bytes, mode: str = DEFAULT_MODE,
         hmac_key=None, hmac_type: str = DEFAULT_HMAC) -> str:
    """Encrypt an encoded plaintext (digest included) and append the HMAC, if a key is given."""
    _check_keys(key, hmac_key, mode)
    pt = plaintext.encode()
    if not (limits.MIN_SPA_ENCODED_MSG_SIZE <= len(pt) < limits.MAX_SPA_ENCODED_MSG_SIZE):
        raise SpaError("length", "plaintext length %d is out of range" % len(pt))
    full = b64encode(encrypt_salted(pt, key, salt, mode))
    wire = full[len(PREFIX):]
    if hmac_key is not None:
        wire += hmac_b64(hmac_type, hmac_key, full.encode())
    return wire


def build(msg, key: bytes, salt: bytes, mode: str = DEFAULT_MODE, hmac_key=None,
          hmac_type: str = DEFAULT_HMAC) -> str:
    """Wire text for a SpaMessage; refuses packets fwknopd would take for GnuPG (too long)."""
    wire = seal(message.encode(msg), key, salt, mode, hmac_key, hmac_type)
    ct_len = len(wire) - (b64_len(hmac_type) if hmac_key is not None else 0)
    limit_len = ct_len + len(PREFIX) if msg.message_type == fields.COMMAND_MSG else len(wire)
    if limit_len >= limits.MIN_GNUPG_MSG_SIZE:
        raise SpaError("length", "SPA packet too long (%d characters); fwknop servers take "
                       "%d or more for GnuPG data: shorten the access list or command"
                       % (limit_len, limits.MIN_GNUPG_MSG_SIZE))
    return wire


def hmac_ok(wire: bytes, hmac_key: bytes, hmac_type: str = DEFAULT_HMAC, mac=None) -> bool:
    """Whether base64 wire data ends with its correct HMAC (constant-time compare).

    The HMAC covers the ciphertext text with the ``U2FsdGVkX1`` prefix put back. This is the
    whole cost of rejecting junk, so the server calls it directly, before anything else
    touches the key, with ``mac`` = digests.hmac_function(hmac_type, hmac_key) prepared once;
    ``unseal(..., hmac_checked=True)`` then skips the repeat."""
    n = b64_len(hmac_type)
    if len(wire) - n < limits.MIN_SPA_ENCODED_MSG_SIZE:
        return False
    end = len(wire) - n
    data = _PREFIX_B + wire[:end]
    raw = mac(data) if mac is not None else hmac_bytes(hmac_type, hmac_key, data)
    return equal(b64encode_bytes(raw), wire[end:])


def unseal(wire, key: bytes, mode: str = DEFAULT_MODE, hmac_key=None,
           hmac_type: str = DEFAULT_HMAC, hmac_checked: bool = False) -> str:
    """Verify the HMAC, decrypt and return the plaintext text (digest not yet checked)."""
    if isinstance(wire, str):
        wire = wire.encode()
    if not (limits.MIN_SPA_ENCODED_MSG_SIZE <= len(wire) < limits.MAX_SPA_ENCODED_MSG_SIZE):
        raise SpaError("length", "SPA data length %d is out of range" % len(wire))
    if not is_b64_text(wire):
        raise SpaError("alphabet", "SPA data is not base64")
    if wire[:len(_PREFIX_B)] == _PREFIX_B:
        raise SpaError("prefix", "SPA data starts with the salted prefix (a re-encoded replay?)")
    if not first_char_ok(wire):
        raise SpaError("prefix", "SPA data does not continue the salted prefix (first "
                       "character not one of 8 9 + /: a re-encoded replay?)")
    _check_keys(key, hmac_key, mode)
    if hmac_key is not None:
        n = b64_len(hmac_type)
        if len(wire) - n < limits.MIN_SPA_ENCODED_MSG_SIZE:
            raise SpaError("length", "SPA data too short for an HMAC-%s" % hmac_type)
        if not hmac_checked and not hmac_ok(wire, hmac_key, hmac_type):
            raise SpaError("hmac", "HMAC verification failed")
        ct = _PREFIX_B + wire[:len(wire) - n]
    else:
        ct = _PREFIX_B + wire
    if len(ct) >= limits.MIN_GNUPG_MSG_SIZE:
        raise SpaError("length", "SPA data too long for Rijndael (%d characters)" % len(ct))
    pt = decrypt_salted(b64decode(ct, "ciphertext"), key, mode)
    gate = limits.FKO_RAND_VAL_SIZE
    if len(pt) <= gate or pt[gate] != 58 or not _all_digits(pt[:gate]):
        raise SpaError("decrypt", "decryption failed (wrong key or mode)")
    try:
        return pt.decode()
    except UnicodeError:
        raise SpaError("field", "plaintext has non-printable characters")


def parse(wire, key: bytes, mode: str = DEFAULT_MODE, hmac_key=None,
          hmac_type: str = DEFAULT_HMAC):
    """Verify, decrypt and decode wire text into a SpaMessage (raises SpaError)."""
    return message.decode(unseal(wire, key, mode, hmac_key, hmac_type))
