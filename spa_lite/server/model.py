"""Plain data passed between the server's stages (no behaviour, no I/O).

Candidate: one payload seen on the wire, with the addresses it came with.
Grant:     what to open for whom and until when (the firewall backends' input).
Decision:  the verdict on one candidate, with the reason a router admin reads in the log.
"""

VERDICT_GRANT = "grant"        # access granted (or would be, in --test mode)
VERDICT_COMMAND = "command"    # a command message was run (ENABLE_CMD_EXEC)
VERDICT_REJECT = "reject"      # authenticated or not, the packet does not earn access
VERDICT_REPLAY = "replay"      # seen before
VERDICT_JUNK = "junk"          # not SPA data at all (length, alphabet): counted, not logged singly


class Candidate:
    """A payload from capture: ``payload`` is the SPA text (HTTP already unwrapped)."""

    __slots__ = ("src", "dst", "proto", "sport", "dport", "payload", "time", "xff", "keys")

    def __init__(self, src: str, dst: str, proto: str, sport: int, dport: int, payload: bytes,
                 time: float, xff=None, keys=None) -> None:
        self.src = src          # IP header source (v4 or v6 text form)
        self.dst = dst          # IP header destination ("0.0.0.0"/"::" in UDP-socket mode)
        self.proto = proto      # "udp" or "tcp"
        self.sport = sport
        self.dport = dport
        self.payload = payload  # bytes of the SPA data
        self.time = time        # capture time (Unix seconds)
        self.xff = xff          # X-Forwarded-For address from SPA over HTTP, if any
        self.keys = keys        # (src, dst) as config.addr_key values, if capture had them


class Grant:
    """Open ``ports`` (list of (proto, port)) to ``address`` until ``expires`` (Unix time).

    NAT grants carry ``nat_ip``/``nat_port`` (DNAT target) and ``kind``: ``access``,
    ``nat`` (forward through the router), ``local_nat`` (redirect to a local port, the
    "ghost service"), ``forward_all``. ``snat``/``masquerade`` ask for source NAT too.
    """

    __slots__ = ("address", "ports", "expires", "kind", "nat_ip", "nat_port", "snat",
                 "masquerade", "dnat", "stanza", "user", "dst")

    def __init__(self, address: str, ports, expires: int, kind: str = "access", nat_ip=None,
                 nat_port=None, snat=None, masquerade: bool = False, dnat: bool = True,
                 stanza: int = 0, user: str = "", dst=None) -> None:
        self.address = address
        self.ports = list(ports)
        self.expires = expires
        self.kind = kind
        self.nat_ip = nat_ip
        self.nat_port = nat_port
        self.snat = snat
        self.masquerade = masquerade
        self.dnat = dnat
        self.stanza = stanza
        self.user = user
        self.dst = dst

    def key(self) -> tuple:
        """Identity of a grant apart from its expiry: a re-knock with the same key extends."""
        return (self.address, tuple(self.ports), self.kind, self.nat_ip, self.nat_port,
                self.snat, self.masquerade, self.dnat, self.dst)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


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
