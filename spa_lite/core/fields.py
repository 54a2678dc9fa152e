"""Message types and the validators for every plaintext field.

The same validators run when encoding and when decoding, so whatever spa-lite builds, it
also accepts (and fwknopd 2.6.10 accepts too, except for the deliberate fixes below).

Deliberate fixes over fwknop 2.6.10, wire-compatible with it:
- timestamps past 2038 (fwknop parses them into a C int) are accepted;
- an access or command message may carry an IPv6 allow address written, as fwknop's ipv6
  branch does, with hex digits and ':' only.
"""

from spa_lite.core import limits
from spa_lite.core.errors import SpaError

COMMAND_MSG = 0
ACCESS_MSG = 1
NAT_ACCESS_MSG = 2
CLIENT_TIMEOUT_ACCESS_MSG = 3
CLIENT_TIMEOUT_NAT_ACCESS_MSG = 4
LOCAL_NAT_ACCESS_MSG = 5
CLIENT_TIMEOUT_LOCAL_NAT_ACCESS_MSG = 6

MESSAGE_TYPE_NAMES = {
    0: "Command msg",
    1: "Access msg",
    2: "NAT access msg",
    3: "Client timeout access msg",
    4: "Client timeout NAT access msg",
    5: "Local NAT access msg",
    6: "Client timeout local NAT access msg",
}
NAT_TYPES = (2, 4, 5, 6)
TIMEOUT_TYPES = (3, 4, 6)
LOCAL_NAT_TYPES = (5, 6)
# With a client timeout > 0 libfko switches to the timeout variant, and back without one.
WITH_TIMEOUT = {1: 3, 2: 4, 5: 6}
WITHOUT_TIMEOUT = {3: 1, 4: 2, 6: 5}

PROTOCOLS = ("tcp", "udp", "icmp", "none")
_USERNAME_FORBIDDEN = '"/\\[]:;|=,+*?<>'
_NAT_HOST_FORBIDDEN = " /?\"'\\"
_DIGITS = "0123456789"
_HEX = "0123456789abcdefABCDEF"


def is_digits(text: str) -> bool:
    """Non-empty and only ASCII digits (str.isdigit also accepts other Unicode digits)."""
    if not text:
        return False
    for ch in text:
        if ch not in _DIGITS:
            return False
    return True


def is_printable(text: str) -> bool:
    for ch in text:
        if ch < " " or ch > "~":
            return False
    return True


def final_message_type(message_type: int, client_timeout) -> int:
    """libfko's automatic type switch between the plain and client-timeout variants."""
    if client_timeout:
        return WITH_TIMEOUT.get(message_type, message_type)
    return WITHOUT_TIMEOUT.get(message_type, message_type)


def validate_username(name: str) -> str:
    if not name:
        raise SpaError("field", "username is empty")
    if not is_printable(name):
        raise SpaError("field", "username has non-printable characters")
    for ch in name:
        if ch in _USERNAME_FORBIDDEN:
            raise SpaError("field", "username contains the forbidden character %r" % ch)
    return name


def parse_ipv4(text: str):
    """4 bytes for a strict dotted quad (no leading zeros, each part 0..255), else None."""
    if not (limits.MIN_IPV4_STR_LEN <= len(text) <= limits.MAX_IPV4_STR_LEN):
        return None
    parts = text.split(".")
    if len(parts) != 4:
        return None
    out = []
    for p in parts:
        if not is_digits(p) or len(p) > 3 or (len(p) > 1 and p[0] == "0"):
            return None
        v = int(p)
        if v > 255:
            return None
        out.append(v)
    return bytes(out)


def parse_ipv6(text: str):
    """16 bytes for an IPv6 address in hex-and-colon form (no embedded IPv4), else None."""
    if not (2 <= len(text) <= limits.MAX_IPV6_STR_LEN) or ":" not in text:
        return None
    for ch in text:
        if ch != ":" and ch not in _HEX:
            return None
    if text.count("::") > 1:
        return None
    if "::" in text:
        head, tail = text.split("::")
        head = head.split(":") if head else []
        tail = tail.split(":") if tail else []
        if len(head) + len(tail) > 7:
            return None
        groups = head + ["0"] * (8 - len(head) - len(tail)) + tail
    else:
        groups = text.split(":")
        if len(groups) != 8:
            return None
    out = b""
    for g in groups:
        if not (1 <= len(g) <= 4):
            return None
        out += int(g, 16).to_bytes(2, "big")
    return out


def validate_allow_ip(text: str) -> str:
    if parse_ipv4(text) is None and parse_ipv6(text) is None:
        raise SpaError("field", "invalid allow IP address %r" % text)
    return text


def _split_allow_ip(message: str, what: str):
    comma = message.find(",")
    if comma < 0 or comma == len(message) - 1:
        raise SpaError("field", "%s must look like 'IP,%s'"
                       % (what, "command" if what == "command message" else "proto/port"))
    return validate_allow_ip(message[:comma]), message[comma + 1:]


def parse_proto_port(spec: str):
    """``tcp/22`` -> ("tcp", 22); protocols as libfko accepts them, port 1..65535."""
    slash = spec.find("/")
    proto, port = (spec[:slash], spec[slash + 1:]) if slash >= 0 else (spec, "")
    if proto not in PROTOCOLS:
        raise SpaError("field", "invalid protocol in %r (tcp, udp, icmp or none)" % spec)
    if not is_digits(port) or len(port) > limits.MAX_PORT_STR_LEN or not 0 < int(port) <= limits.MAX_PORT:
        raise SpaError("field", "invalid port in %r (1..65535)" % spec)
    return proto, int(port)


def parse_access(message: str):
    """``IP,proto/port[,proto/port...]`` -> (allow_ip, [(proto, port), ...])."""
    ip, rest = _split_allow_ip(message, "access message")
    return ip, [parse_proto_port(s) for s in rest.split(",")]


def parse_command(message: str):
    """``IP,command text`` -> (allow_ip, command)."""
    ip, cmd = _split_allow_ip(message, "command message")
    if not is_printable(cmd):
        raise SpaError("field", "command has non-printable characters")
    return ip, cmd


def parse_nat(nat: str):
    """``host,port`` (exactly one comma) -> (host, port)."""
    if nat.count(",") != 1:
        raise SpaError("field", "NAT access must be 'host,port'")
    host, port = nat.split(",")
    if not host or len(host) > limits.MAX_NAT_HOST_LEN:
        raise SpaError("field", "invalid NAT host %r" % host)
    for ch in host:
        if ch in _NAT_HOST_FORBIDDEN or ch < " " or ch > "~":
            raise SpaError("field", "invalid character %r in NAT host" % ch)
    if not is_digits(port) or len(port) > limits.MAX_PORT_STR_LEN or not 0 < int(port) <= limits.MAX_PORT:
        raise SpaError("field", "invalid NAT port %r (1..65535)" % port)
    return host, int(port)


def validate_message(message_type: int, message: str) -> str:
    if message_type == COMMAND_MSG:
        parse_command(message)
    else:
        parse_access(message)
    return message


def make_rand_value(random_bytes: bytes) -> str:
    """16 decimal digits from 8 caller-supplied random bytes (no randomness in the core)."""
    if len(random_bytes) < 8:
        raise SpaError("param", "need 8 random bytes for the random value")
    return "%016d" % (int.from_bytes(random_bytes[:8], "big") % 10 ** limits.FKO_RAND_VAL_SIZE)
