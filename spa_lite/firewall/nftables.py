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

import ipaddress
import json
import shutil

from spa_lite.firewall.base import Backend, FirewallError, Snapshot
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

    def setup(self, keep_grants: bool = False) -> None:
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

    # -- reading the kernel
    def _table_json(self):
        """The table's objects from ``nft -j``; [] when the table does not exist."""
        try:
            out = run([self.nft, "-j", "list", "table", "inet", self.table])
        except FirewallError as exc:
            if "No such file or directory" in str(exc):
                return []
            raise
        try:
            return json.loads(out).get("nftables", [])
        except ValueError:
            raise FirewallError("nft -j list table inet %s: output is not JSON" % self.table)

    def _grant_sets(self, objects):
        """{our purpose name: [(key parts, value parts or None, seconds left)]} for the grant
        sets and maps found in ``objects`` (a list from ``nft -j``)."""
        by_name = {v: k for k, v in self.SETS.items()}
        out = {}
        for obj in objects:
            body = obj.get("set") or obj.get("map")
            if not body or body.get("name") not in by_name:
                continue
            elems = out.setdefault(by_name[body["name"]], [])
            for e in body.get("elem", []):
                value = None
                if isinstance(e, list):            # a map element: [key, value]
                    e, value = e[0], _parts(e[1])
                inner = e.get("elem", e) if isinstance(e, dict) else e
                val = inner.get("val", inner) if isinstance(inner, dict) and "val" in inner else inner
                left = inner.get("expires", 0) if isinstance(inner, dict) else 0
                elems.append((_parts(val), value, int(left)))
        return out

    def list(self, now: int) -> list:
        """Live grants from the kernel's sets with their remaining time: one per allowed
        (address, proto, port), one per NAT mapping, one per forward-all address."""
        return self._grants_from(self._grant_sets(self._table_json()), now)

    def _grants_from(self, sets, now: int) -> list:
        out = []
        for fam in ("4", "6"):
            allowed = {key for key, _, _ in sets.get("allow" + fam, [])}
            local = set()
            for key, value, left in sets.get("dnat" + fam, []):
                addr, proto, port = key
                nat_ip, nat_port = value
                # a local-NAT grant ("ghost service") also allows the hidden port itself
                kind = "local_nat" if (addr, proto, nat_port) in allowed else "nat"
                if kind == "local_nat":
                    local.add((addr, proto, nat_port))
                out.append(Grant(addr, [(proto, int(port))], now + left, kind, nat_ip,
                                 int(nat_port)))
            for key, _, left in sets.get("allow" + fam, []):
                if key in local:
                    continue
                addr, proto, port = key
                out.append(Grant(addr, [(proto, int(port))], now + left))
            for key, _, left in sets.get("fwdall" + fam, []):
                out.append(Grant(key[0], [], now + left, "forward_all", "0.0.0.0"))
        return out

    def inspect(self, now: int):
        objects = self._table_json()
        handles = tuple(sorted((k, o[k].get("name"), o[k].get("handle")) for o in objects
                               for k in ("table", "set", "map") if k in o))
        if not any(h[0] == "table" for h in handles):
            return Snapshot(None, False, set())
        sets = self._grant_sets(objects)
        present = {(name, key) for name, elems in sets.items() for key, _, _ in elems}
        rules, protect = {}, set()
        for o in objects:
            if "rule" in o:
                rules[o["rule"].get("chain")] = rules.get(o["rule"].get("chain"), 0) + 1
            elif "set" in o and o["set"].get("name") == "protect":
                protect = {tuple(_parts(e)) for e in o["set"].get("elem", [])}
        want = {tuple(_parts_text("%s . %d" % p)) for p in self.protect_ports}
        return Snapshot(handles, rules == self._rule_counts() and protect == want, present)

    def _rule_counts(self) -> dict:
        counts = {}
        for line in self.ruleset().splitlines():
            if line.startswith("add rule "):
                chain = line.split()[4]
                counts[chain] = counts.get(chain, 0) + 1
        return counts

    def has(self, snapshot, g) -> bool:
        return all((name, tuple(_parts_text(key))) in snapshot.present
                   for name, key, _ in self._elements(g))

    def change_notice(self) -> bool:
        return True      # nft (and fw4's reload) change the ruleset through nf_tables

    # -- admin operations
    def revoke_address(self, address: str, now: int) -> list:
        """Delete every element for ``address`` in one transaction (retried once if an element
        expired in between); returns the grants that were live."""
        want = _norm(address)
        for attempt in (1, 2):
            sets = self._grant_sets(self._table_json())
            mine = {name: [e for e in elems if e[0] and e[0][0] == want]
                    for name, elems in sets.items()}
            lines = ["delete element inet %s %s { %s }" % (self.table, self.SETS[name],
                                                           " . ".join(e[0]))
                     for name, elems in mine.items() for e in elems]
            if not lines:
                return []
            try:
                self._apply("\n".join(lines) + "\n")
                return self._grants_from(mine, now)
            except FirewallError:
                if attempt == 2:
                    raise

    def flush(self, everything: bool = False) -> None:
        """Empty the grant sets (PROTECT_PORTS stays); ``everything``: delete the table."""
        if everything:
            try:
                run([self.nft, "delete", "table", "inet", self.table])
            except FirewallError as exc:
                if "No such file" not in str(exc):
                    raise
            return
        present = {o.get("set", o.get("map", {})).get("name") for o in self._table_json()}
        lines = ["flush %s inet %s %s" % ("map" if key.startswith("dnat") else "set", self.table,
                                          name)
                 for key, name in self.SETS.items() if name in present]
        if lines:
            self._apply("\n".join(lines) + "\n")


def _norm(text: str) -> str:
    """One text form per element part: addresses canonical (nft prints IPv6 compressed),
    everything else as nft prints it."""
    if ":" in text or text.count(".") == 3:
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            pass
    return text


def _parts(val) -> tuple:
    """Key parts of an element as ``nft -j`` shows it (a concat, or one value)."""
    if isinstance(val, dict) and "concat" in val:
        return tuple(_norm(str(v)) for v in val["concat"])
    return (_norm(str(val)),)


def _parts_text(key: str) -> tuple:
    """Key parts of an element as this backend writes it (``a . tcp . 22``)."""
    return tuple(_norm(p.strip()) for p in key.split(" . "))
