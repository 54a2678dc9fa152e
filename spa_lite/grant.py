"""What to open for whom and until when: the one data class both the server (which decides)
and the firewall backends (which apply) use. It sits below both packages so that
``spa_lite.firewall`` does not depend on ``spa_lite.server``."""


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

    def ports_text(self) -> str:
        """``tcp/22,udp/53`` (or the kind, for grants without ports), as logs show it."""
        return ",".join("%s/%d" % p for p in self.ports) or self.kind
