"""The SPA plaintext: ``rand:B64(user):ts:version:type:B64(msg)[:B64(nat)][:B64(auth)][:timeout]:digest``.

``encode`` and ``decode`` are exact inverses for every valid message; the digest type is
carried on the message object (it is inferred from the digest length when decoding).
"""

from spa_lite.core import fields, limits
from spa_lite.core.b64 import b64decode, b64encode
from spa_lite.core.digests import DEFAULT_DIGEST, DIGESTS_BY_B64_LEN, digest_b64, digest_name, equal
from spa_lite.core.errors import SpaError


class SpaMessage:
    """The decoded fields of one SPA packet (plain data, no behaviour beyond checks)."""

    def __init__(self, rand_value: str = "", username: str = "", timestamp: int = 0,
                 message_type: int = fields.ACCESS_MSG, message: str = "", nat_access=None,
                 server_auth=None, client_timeout=None, version: str = limits.FKO_PROTOCOL_VERSION,
                 digest_type: str = DEFAULT_DIGEST) -> None:
        self.rand_value = rand_value
        self.username = username
        self.timestamp = timestamp
        self.version = version
        self.message_type = message_type
        self.message = message
        self.nat_access = nat_access
        self.server_auth = server_auth
        self.client_timeout = client_timeout
        self.digest_type = digest_type

    def as_dict(self) -> dict:
        return {
            "rand": self.rand_value, "user": self.username, "timestamp": self.timestamp,
            "version": self.version, "type": self.message_type,
            "type_name": fields.MESSAGE_TYPE_NAMES.get(self.message_type, "?"),
            "message": self.message, "nat_access": self.nat_access,
            "server_auth": self.server_auth, "client_timeout": self.client_timeout,
            "digest_type": self.digest_type,
        }

    def __eq__(self, other) -> bool:
        return isinstance(other, SpaMessage) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return "SpaMessage(%r)" % (self.as_dict(),)


def _b64_field(text: str, limit: int, what: str) -> str:
    raw = b64decode(text, what)
    if len(text) > limit:
        raise SpaError("field", "%s is longer than %d base64 characters" % (what, limit))
    try:
        return raw.decode()
    except UnicodeError:
        raise SpaError("field", "%s is not text" % what)


def _encoded_field(value: str, limit: int, what: str) -> str:
    enc = b64encode(value.encode())
    if len(enc) > limit:
        raise SpaError("field", "%s is too long (%d base64 characters, limit %d)"
                       % (what, len(enc), limit))
    return enc


def encode(msg: SpaMessage) -> str:
    """Plaintext with its inner digest, exactly as libfko's ``fko_encode_spa_data``."""
    digest = digest_name(msg.digest_type)
    rand = msg.rand_value
    if len(rand) != limits.FKO_RAND_VAL_SIZE or not fields.is_digits(rand):
        raise SpaError("field", "random value must be %d digits" % limits.FKO_RAND_VAL_SIZE)
    fields.validate_username(msg.username)
    ts = msg.timestamp
    if not isinstance(ts, int) or ts < 0 or len(str(ts)) > limits.MAX_SPA_TIMESTAMP_SIZE:
        raise SpaError("field", "timestamp must be a non-negative integer of at most 12 digits")
    ver = msg.version
    if not ver or len(ver) > limits.MAX_SPA_VERSION_SIZE or ":" in ver or not fields.is_printable(ver):
        raise SpaError("field", "version must be 1..8 printable characters")
    timeout = msg.client_timeout
    if timeout is not None and (timeout < 0 or timeout > limits.MAX_CLIENT_TIMEOUT):
        raise SpaError("field", "client timeout must be 0..%d" % limits.MAX_CLIENT_TIMEOUT)
    mtype = fields.final_message_type(msg.message_type, timeout)
    if mtype not in fields.MESSAGE_TYPE_NAMES:
        raise SpaError("field", "unknown message type %r" % (msg.message_type,))
    fields.validate_message(mtype, msg.message)
    parts = [rand, _encoded_field(msg.username, limits.MAX_SPA_USERNAME_SIZE, "username"),
             str(ts), ver, str(mtype),
             _encoded_field(msg.message, limits.MAX_SPA_MESSAGE_SIZE, "message")]
    if mtype in fields.NAT_TYPES:
        if not msg.nat_access:
            raise SpaError("field", "NAT message types need a NAT access field")
        fields.parse_nat(msg.nat_access)
        parts.append(_encoded_field(msg.nat_access, limits.MAX_SPA_MESSAGE_SIZE, "NAT access"))
    elif msg.nat_access:
        raise SpaError("field", "message type %d has no NAT field" % mtype)
    if msg.server_auth:
        if not fields.is_printable(msg.server_auth):
            raise SpaError("field", "server auth has non-printable characters")
        parts.append(_encoded_field(msg.server_auth, limits.MAX_SPA_MESSAGE_SIZE, "server auth"))
    if mtype in fields.TIMEOUT_TYPES:
        parts.append(str(timeout))
    text = ":".join(parts)
    return text + ":" + digest_b64(digest, text.encode())


def decode(text: str) -> SpaMessage:
    """Parse and verify a decrypted plaintext; raise SpaError(code, reason) on any defect."""
    if not (limits.MIN_SPA_ENCODED_MSG_SIZE <= len(text) < limits.MAX_SPA_ENCODED_MSG_SIZE):
        raise SpaError("length", "plaintext length %d is out of range" % len(text))
    if not fields.is_printable(text):
        raise SpaError("field", "plaintext has non-printable characters")
    seps = text.count(":")
    if seps < limits.MIN_SPA_FIELDS or seps > limits.MAX_SPA_FIELDS:
        raise SpaError("field", "plaintext has %d fields" % (seps + 1))
    cut = text.rfind(":")
    body, digest = text[:cut], text[cut + 1:]
    found = None
    for name in DIGESTS_BY_B64_LEN.get(len(digest), ()):
        try:
            calc = digest_b64(name, body.encode())
        except SpaError:  # e.g. SHA-384 missing on MicroPython: try the next candidate
            continue
        if equal(calc, digest):
            found = name
            break
    if found is None:
        if len(digest) not in DIGESTS_BY_B64_LEN:
            raise SpaError("digest", "unknown digest length %d" % len(digest))
        raise SpaError("digest", "digest does not match the data")

    f = body.split(":")
    for i, part in enumerate(f):
        if not part:
            raise SpaError("field", "field %d is empty" % (i + 1))
    rand, user_b64, ts, ver, mtype_s = f[0], f[1], f[2], f[3], f[4]
    rest = f[5:]
    if len(rand) != limits.FKO_RAND_VAL_SIZE or not fields.is_digits(rand):
        raise SpaError("field", "random value is not %d digits" % limits.FKO_RAND_VAL_SIZE)
    username = fields.validate_username(
        _b64_field(user_b64, limits.MAX_SPA_USERNAME_SIZE, "username"))
    if len(ts) > limits.MAX_SPA_TIMESTAMP_SIZE or not fields.is_digits(ts):
        raise SpaError("field", "invalid timestamp")
    if len(ver) > limits.MAX_SPA_VERSION_SIZE:
        raise SpaError("field", "version is longer than %d characters" % limits.MAX_SPA_VERSION_SIZE)
    if len(mtype_s) > limits.MAX_SPA_MESSAGE_TYPE_SIZE or not fields.is_digits(mtype_s):
        raise SpaError("field", "invalid message type")
    mtype = int(mtype_s)
    if mtype not in fields.MESSAGE_TYPE_NAMES:
        raise SpaError("field", "unknown message type %d" % mtype)
    if not rest:
        raise SpaError("field", "message field is missing")
    message = fields.validate_message(
        mtype, _b64_field(rest[0], limits.MAX_SPA_MESSAGE_SIZE, "message"))
    rest = rest[1:]
    nat = None
    if mtype in fields.NAT_TYPES:
        if not rest:
            raise SpaError("field", "NAT access field is missing")
        nat = _b64_field(rest[0], limits.MAX_SPA_MESSAGE_SIZE, "NAT access")
        fields.parse_nat(nat)
        rest = rest[1:]
    auth = None
    timeout = None
    if mtype in fields.TIMEOUT_TYPES:
        if len(rest) == 2:
            auth = _b64_field(rest[0], limits.MAX_SPA_MESSAGE_SIZE, "server auth")
            rest = rest[1:]
        if len(rest) != 1:
            raise SpaError("field", "client timeout field is missing or extra fields follow")
        t = rest[0]
        if len(t) > limits.MAX_SPA_TIMESTAMP_SIZE or not fields.is_digits(t) or int(t) > limits.MAX_CLIENT_TIMEOUT:
            raise SpaError("field", "client timeout must be 0..%d" % limits.MAX_CLIENT_TIMEOUT)
        timeout = int(t)
    elif rest:
        if len(rest) != 1:
            raise SpaError("field", "too many fields for message type %d" % mtype)
        auth = _b64_field(rest[0], limits.MAX_SPA_MESSAGE_SIZE, "server auth")
    return SpaMessage(rand, username, int(ts), mtype, message, nat, auth, timeout, ver, found)
