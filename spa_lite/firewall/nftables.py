"""nftables backend (any Linux): spa-lite's own ``table inet spa_lite``.

Grants are elements of sets and maps declared ``flags timeout``, so the *kernel* closes the
door on time even if the daemon dies. A re-knock replaces the element's timeout in one
transaction (add, delete, add: atomic, so nothing is ever half-applied).

With PROTECT_PORTS (e.g. ``tcp/22, tcp/2222``) spa-lite also owns the default drop: new
connections to those ports are dropped unless a grant matches, so a host needs no other
firewall. Established connections survive a grant's expiry, as with fwknop. Note that an
accept in this table cannot override a drop in another table: on OpenWrt use the fw4
backend, which puts the sets inside ``table inet fw4``.

NAT (ENABLE_IPT_FORWARDING / ENABLE_IPT_LOCAL_NAT): a timeout map in a prerouting nat
chain redirects (client, proto, requested port) to the target; the forward chain accepts
the forwarded flow; local NAT (the "ghost service") needs only the map plus an input grant
for the hidden port; FORWARD_ALL forwards everything from the client (the SPA gateway).
Source NAT is added with masquerade when the grant asks for it.
"""

import json
import shutil

from spa_lite.firewall.base import Backend, FirewallError
from spa_lite.firewall.run import run
from spa_lite.grant import Grant

TABLE = "spa_lite"
MIN_TIMEOUT = 1


def _family(addr: str) -> str:
    return "6" if ":" in addr else "4"


class NftablesBackend(Backend):
    name = "nftables"
    kernel_expiry = True
    # set and map names inside the table, by purpose and address family
    SETS = {"allow4": "allow4", "allow6": "allow6", "dnat4": "dnat4", "dnat6": "dnat6",
            "fwd4": "fwd4", "fwd6": "fwd6", "masq4": "masq4", "masq6": "masq6",
            "fwdall4": "fwdall4", "fwdall6": "fwdall6", "masqall4": "masqall4",
            "masqall6": "masqall6"}

    def __init__(self, protect_ports=(), nft: str = "nft", table: str = TABLE,
                 nat: bool = False) -> None:
        self.protect_ports = list(protect_ports)
        self.nft = nft
        self.table = table
        self.nat = nat

    def available(self) -> bool:
        return shutil.which(self.nft) is not None

    def _apply(self, script: str) -> None:
        run([self.nft, "-f", "-"], script)

    def ruleset(self) -> str:
        """The idempotent setup transaction: existing elements (live grants) are kept."""
        t = "inet " + self.table
        lines = ["add table %s" % t]
        for fam, addr in (("4", "ipv4_addr"), ("6", "ipv6_addr")):
            lines.append("add set %s allow%s { type %s . inet_proto . inet_service; flags timeout; }"
                         % (t, fam, addr))
            lines.append("add map %s dnat%s { type %s . inet_proto . inet_service : %s . inet_service; "
                         "flags timeout; }" % (t, fam, addr, addr))
            lines.append("add set %s fwd%s { type %s . %s . inet_proto . inet_service; flags timeout; }"
                         % (t, fam, addr, addr))
            lines.append("add set %s masq%s { type %s . %s; flags timeout; }" % (t, fam, addr, addr))
            lines.append("add set %s fwdall%s { type %s; flags timeout; }" % (t, fam, addr))
            lines.append("add set %s masqall%s { type %s; flags timeout; }" % (t, fam, addr))
        lines.append("add set %s protect { type inet_proto . inet_service; }" % t)
        lines.append("flush set %s protect" % t)
        if self.protect_ports:
            lines.append("add element %s protect { %s }" % (
                t, ", ".join("%s . %d" % p for p in self.protect_ports)))
        chains = {
            "input": "type filter hook input priority filter - 5; policy accept;",
            "forward": "type filter hook forward priority filter - 5; policy accept;",
            "prerouting": "type nat hook prerouting priority dstnat - 5; policy accept;",
            "postrouting": "type nat hook postrouting priority srcnat - 5; policy accept;",
        }
        for name, spec in chains.items():
            lines.append("add chain %s %s { %s }" % (t, name, spec))
            lines.append("flush chain %s %s" % (t, name))
        lines += [
            "add rule %s input ct state established,related accept" % t,
            "add rule %s input ip saddr . meta l4proto . th dport @allow4 accept" % t,
            "add rule %s input ip6 saddr . meta l4proto . th dport @allow6 accept" % t,
            "add rule %s input ct status dnat accept" % t,
            "add rule %s input meta l4proto . th dport @protect drop" % t,
            "add rule %s forward ct state established,related accept" % t,
            "add rule %s forward ip saddr . ip daddr . meta l4proto . th dport @fwd4 accept" % t,
            "add rule %s forward ip6 saddr . ip6 daddr . meta l4proto . th dport @fwd6 accept" % t,
            "add rule %s forward ip saddr @fwdall4 accept" % t,
            "add rule %s forward ip6 saddr @fwdall6 accept" % t,
            "add rule %s prerouting dnat ip to ip saddr . meta l4proto . th dport map @dnat4" % t,
            "add rule %s prerouting dnat ip6 to ip6 saddr . meta l4proto . th dport map @dnat6" % t,
            "add rule %s postrouting ip saddr . ip daddr @masq4 masquerade" % t,
            "add rule %s postrouting ip6 saddr . ip6 daddr @masq6 masquerade" % t,
            "add rule %s postrouting ip saddr @masqall4 masquerade" % t,
            "add rule %s postrouting ip6 saddr @masqall6 masquerade" % t,
        ]
        return "\n".join(lines) + "\n"

    def setup(self) -> None:
        self._apply(self.ruleset())

    def _elements(self, g: Grant):
        """(set name, element key, element value or None) for everything a grant needs."""
        fam = _family(g.address)
        out = []
        if g.kind in ("access", "cmd_cycle"):
            for proto, port in g.ports:
                out.append(("allow" + fam, "%s . %s . %d" % (g.address, proto, port), None))
        elif g.kind == "local_nat":
            proto, port = g.ports[0]
            out.append(("allow" + fam, "%s . %s . %d" % (g.address, proto, g.nat_port), None))
            if g.dnat and port != g.nat_port:
                out.append(("dnat" + _family(g.nat_ip), "%s . %s . %d" % (g.address, proto, port),
                            "%s . %d" % (g.nat_ip, g.nat_port)))
        elif g.kind == "nat":
            proto, port = g.ports[0]
            out.append(("fwd" + fam, "%s . %s . %s . %d" % (g.address, g.nat_ip, proto, g.nat_port), None))
            if g.dnat:
                out.append(("dnat" + fam, "%s . %s . %d" % (g.address, proto, port),
                            "%s . %d" % (g.nat_ip, g.nat_port)))
            if g.masquerade or g.snat:
                out.append(("masq" + fam, "%s . %s" % (g.address, g.nat_ip), None))
        elif g.kind == "forward_all":
            # the SPA gateway: forward everything from the client (FORWARD_ALL)
            out.append(("fwdall" + fam, g.address, None))
            if g.masquerade or g.snat:
                out.append(("masqall" + fam, g.address, None))
        else:
            raise FirewallError("nftables backend: unsupported grant kind %s" % g.kind)
        return out

    def grant(self, g: Grant, now: int, old=None) -> None:
        timeout = max(MIN_TIMEOUT, int(g.expires - now))
        t = "inet " + self.table
        lines = []
        for name, key, value in self._elements(g):
            name = self.SETS[name]
            elem = "%s timeout %ds%s" % (key, timeout, " : " + value if value else "")
            # add (no-op if present), delete, add: replaces the timeout atomically
            lines.append("add element %s %s { %s }" % (t, name, elem))
            lines.append("delete element %s %s { %s }" % (t, name, key))
            lines.append("add element %s %s { %s }" % (t, name, elem))
        self._apply("\n".join(lines) + "\n")

    def revoke(self, g: Grant) -> None:
        """Expiry is the kernel's job; an explicit early revoke deletes what is still there."""
        t = "inet " + self.table
        for name, key, _ in self._elements(g):
            try:
                self._apply("delete element %s %s { %s }\n" % (t, self.SETS[name], key))
            except FirewallError:
                pass        # already expired in the kernel

    def list(self, now: int) -> list:
        """Live access grants from the kernel's sets, with their remaining time."""
        out = []
        for fam in ("4", "6"):
            try:
                data = json.loads(run([self.nft, "-j", "list", "set", "inet", self.table,
                                       self.SETS["allow" + fam]]))
            except (FirewallError, ValueError):
                continue
            for item in data.get("nftables", []):
                for e in item.get("set", {}).get("elem", []):
                    elem = e.get("elem", e)
                    addr, proto, port = elem["val"]["concat"]
                    out.append(Grant(addr, [(proto, int(port))], now + int(elem.get("expires", 0))))
        return out

    def check(self, grants, now: int) -> list:
        """Re-add live grants after the firewall lost them (fw4 restart, nft flush ruleset).

        Grants in the allow sets are looked up; if any is missing, the table was rebuilt
        under us, so everything live (NAT grants too) is put back with its remaining time.
        Returns the grants re-added."""
        live = [g for g in grants if g.expires > now + MIN_TIMEOUT]
        present = {(g.address, g.ports[0]) for g in self.list(now)}

        def missing(g):
            if g.kind == "nat" or not g.ports:
                return False          # not visible in the allow sets
            port = g.nat_port if g.kind == "local_nat" else g.ports[0][1]
            return (g.address, (g.ports[0][0], port)) not in present
        if not any(missing(g) for g in live):
            return []
        self.setup()
        for g in live:
            self.grant(g, now)
        return live

    def flush(self) -> None:
        try:
            run([self.nft, "delete", "table", "inet", self.table])
        except FirewallError as exc:
            if "No such file" not in str(exc):
                raise
