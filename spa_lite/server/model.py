"""Plain data passed between the server's stages (no I/O), and the address forms they carry.

Candidate: one payload seen on the wire, with the addresses it came with.
Grant:     what to open for whom and until when (lives in spa_lite.grant, below the
           server and the firewall backends, which both use it).
Decision:  the verdict on one candidate, with the reason a router admin reads in the log.
"""

import socket

from spa_lite.core.fields import parse_ipv4
from spa_lite.grant import Grant  # noqa: F401  (re-exported: the policy builds grants)

VERDICT_GRANT = "grant"        # access granted (or would be, in --test mode)
VERDICT_COMMAND = "command"    # a command message was run (ENABLE_CMD_EXEC)
VERDICT_REJECT = "reject"      # authenticated or not, the packet does not earn access
VERDICT_REPLAY = "replay"      # seen before
VERDICT_JUNK = "junk"          # not SPA data at all (length, alphabet): counted, not logged singly
VERDICT_PENDING = "pending"    # waiting for gpg (server/gpggate.py): decided again, not logged


class Candidate:
    """A payload from capture: ``payload`` is the SPA text (HTTP already unwrapped).

    Capture hands over the packed addresses (``packed``); their text form (``src``/``dst``)
    and integer form (``keys``, for stanza matching) are made on first use. A junk packet
    that is only counted never needs the text, and formatting two addresses was a tenth of
    its cost."""

    __slots__ = ("_src", "_dst", "proto", "sport", "dport", "payload", "time", "xff", "packed",
                 "_keys")

    def __init__(self, src, dst, proto: str, sport: int, dport: int, payload: bytes,
                 time: float, xff=None, packed=None) -> None:
        self._src = src         # IP header source (v4 or v6 text form), or None: see packed
        self._dst = dst         # IP header destination ("0.0.0.0"/"::" in UDP-socket mode)
        self.proto = proto      # "udp" or "tcp"
        self.sport = sport
        self.dport = dport
        self.payload = payload  # bytes of the SPA data
        self.time = time        # capture time (Unix seconds)
        self.xff = xff          # X-Forwarded-For address from SPA over HTTP, if any
        self.packed = packed    # (src, dst) as 4- or 16-byte strings, when capture has them
        self._keys = None

    @property
    def src(self) -> str:
        if self._src is None:
            self._src = _text(self.packed[0])
        return self._src

    @property
    def dst(self) -> str:
        if self._dst is None:
            self._dst = _text(self.packed[1])
        return self._dst

    @property
    def source_id(self):
        """The source in its cheapest hashable form (packed bytes or text), for counting."""
        return self.packed[0] if self.packed is not None else self._src

    @property
    def keys(self):
        """(src, dst) as ``(version, int)`` pairs, the form stanzas match on (None: not an
        address)."""
        if self._keys is None:
            if self.packed is not None:
                self._keys = (packed_key(self.packed[0]), packed_key(self.packed[1]))
            else:
                self._keys = (addr_key(self._src), addr_key(self._dst))
        return self._keys


def packed_key(packed: bytes):
    """``(version, int)`` of a packed 4- or 16-byte address: the form stanzas match on."""
    return (4 if len(packed) == 4 else 6), int.from_bytes(packed, "big")


def addr_key(text: str):
    """``packed_key`` of an IPv4/IPv6 address text, or None if it is not one.
    inet_pton is an order of magnitude cheaper than ipaddress.ip_address per packet."""
    try:
        return packed_key(socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET,
                                           text))
    except (OSError, ValueError, TypeError):
        return None


_LITERAL_CHARS = frozenset("0123456789abcdefABCDEF.:")
MAX_ADDRESS_LITERAL = 45   # the longest IPv6 text inet_ntop makes (with a dotted tail)


def strict_address(text):
    """The canonical text of a strict IPv4 dotted quad or IPv6 literal, else None.

    The one gate for every address that reaches a firewall backend's argv, a command or a
    log: X-Forwarded-For, NAT targets (typed or resolved), config addresses. Python's
    ``ipaddress`` accepts an IPv6 scope id of almost any characters ("fe80::1%;reboot"),
    and inet_pton alone would pass "1.2.3.4" with odd spacing on some libcs, so only hex
    digits, '.' and ':' get as far as inet_pton, and IPv4 must be fwknop's dotted quad."""
    if not isinstance(text, str) or not 2 <= len(text) <= MAX_ADDRESS_LITERAL:
        return None
    for ch in text:
        if ch not in _LITERAL_CHARS:
            return None
    if ":" not in text:
        raw = parse_ipv4(text)
        return None if raw is None else _text(raw)
    try:
        return _text(socket.inet_pton(socket.AF_INET6, text))
    except (OSError, ValueError):
        return None


def _text(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


def address_text(source_id) -> str:
    """Text form of a Candidate.source_id."""
    return _text(source_id) if isinstance(source_id, bytes) else source_id


class Decision:
    """The outcome for one candidate. ``grant`` is set for VERDICT_GRANT."""

    __slots__ = ("verdict", "reason", "stanza", "user", "access", "grant", "command", "message",
                 "timeout")

    def __init__(self, verdict: str, reason: str, stanza=None, user=None, access=None, grant=None,
                 command=None, message=None, timeout=None) -> None:
        self.verdict = verdict
        self.reason = reason
        self.stanza = stanza      # 1-based stanza number, as fwknopd logs it
        self.user = user
        self.access = access      # the decoded message string
        self.grant = grant
        self.command = command    # command to run (command messages, CMD_CYCLE_OPEN)
        self.message = message    # the decoded SpaMessage, when decryption succeeded
        self.timeout = timeout    # seconds granted
