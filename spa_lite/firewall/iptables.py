"""iptables / ip6tables backend, laid out as fwknopd does it so existing tooling keeps working:
chains FWKNOP_INPUT (filter), FWKNOP_FORWARD (filter), FWKNOP_PREROUTING (nat) and
FWKNOP_POSTROUTING (nat), jumped to from position 1 of the built-in chains, one rule per
grant with the comment ``_exp_<absolute expiry>``.

iptables has no timeouts, so the daemon deletes rules when they expire; if it dies, rules
stay until the next start, which deletes every expired ``_exp_`` rule (crash recovery) or,
with FLUSH_IPT_AT_INIT (fwknopd's default, Y), flushes the chains. Every change is one
``iptables-restore --noflush`` batch per table, so it applies whole or not at all.
PROTECT_PORTS adds chain SPA_LITE_PROTECT (jumped to right after FWKNOP_INPUT) that drops
new connections to those ports.
"""

import ipaddress
import re
import shutil

from spa_lite.firewall.base import Backend, FirewallError, Snapshot
from spa_lite.firewall.run import run
from spa_lite.grant import Grant

EXP_RE = re.compile(r"_exp_(\d+)")
CHAINS = (("filter", "INPUT", "FWKNOP_INPUT"), ("filter", "FORWARD", "FWKNOP_FORWARD"),
          ("nat", "PREROUTING", "FWKNOP_PREROUTING"), ("nat", "POSTROUTING", "FWKNOP_POSTROUTING"))
PROTECT = "SPA_LITE_PROTECT"


class IptablesBackend(Backend):
    name = "iptables"
    kernel_expiry = False

    def __init__(self, protect_ports=(), nat: bool = False, flush_at_init: bool = True,
                 tools=("iptables", "ip6tables")) -> None:
        self.protect_ports = list(protect_ports)
        self.nat = nat
        self.flush_at_init = flush_at_init
        self.tools = tools
        self.nft = tools[0]          # named like the nft backend's tool for error messages
        self._set_up = False         # a later setup (watch, SIGHUP) keeps the live grants

    def available(self) -> bool:
        return shutil.which(self.tools[0]) is not None and shutil.which(self.tools[0] + "-restore") is not None

    def _families(self):
        return [t for t in self.tools if shutil.which(t)]

    def _chains(self):
        return [c for c in CHAINS if c[0] == "filter" and c[1] == "INPUT"] + \
            ([c for c in CHAINS if c[2] != "FWKNOP_INPUT"] if self.nat else [])

    def _restore(self, tool: str, table: str, lines) -> None:
        if lines:
            run([tool + "-restore", "--noflush"], "*%s\n%s\nCOMMIT\n" % (table, "\n".join(lines)))

    def setup(self, keep_grants: bool = False) -> None:
        first = not self._set_up and not keep_grants
        for tool in self._families():
            for table, builtin, chain in self._chains():
                existing = run([tool, "-t", table, "-S"])
                lines = []
                if (":%s" % chain) not in existing and ("-N %s" % chain) not in existing:
                    lines.append(":%s - [0:0]" % chain)
                if "-A %s -j %s" % (builtin, chain) not in existing:
                    lines.append("-I %s 1 -j %s" % (builtin, chain))
                if self.flush_at_init and first:
                    lines.append("-F %s" % chain)   # FLUSH_IPT_AT_INIT: only at the start
                self._restore(tool, table, lines)
            if self.protect_ports:
                existing = run([tool, "-t", "filter", "-S"])
                lines = [] if "-N %s" % PROTECT in existing else [":%s - [0:0]" % PROTECT]
                lines.append("-F %s" % PROTECT)
                if "-A INPUT -j %s" % PROTECT not in existing:
                    lines.append("-I INPUT 2 -j %s" % PROTECT)
                lines.append("-A %s -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN" % PROTECT)
                for proto, port in self.protect_ports:
                    lines.append("-A %s -p %s --dport %d -j DROP" % (PROTECT, proto, port))
                self._restore(tool, "filter", lines)
        if not self.flush_at_init and first:
            import time
            self.expire_rules(int(time.time()))
        self._set_up = True

    def _tool(self, addr: str) -> str:
        return self.tools[1] if ":" in addr else self.tools[0]

    def _rules(self, g: Grant):
        """(table, rule spec without -A/-D) for a grant, as fwknopd writes them."""
        c = "-m comment --comment _exp_%d" % g.expires
        out = []
        if g.kind in ("access", "cmd_cycle"):
            for proto, port in g.ports:
                out.append(("filter", "FWKNOP_INPUT -s %s -p %s --dport %d %s -j ACCEPT"
                            % (g.address, proto, port, c)))
        elif g.kind == "local_nat":
            proto, port = g.ports[0]
            out.append(("filter", "FWKNOP_INPUT -s %s -p %s --dport %d %s -j ACCEPT"
                        % (g.address, proto, g.nat_port, c)))
            if g.dnat:
                out.append(("nat", "FWKNOP_PREROUTING -s %s -p %s --dport %d %s -j DNAT "
                            "--to-destination %s:%d" % (g.address, proto, port, c, g.nat_ip, g.nat_port)))
        elif g.kind == "nat":
            proto, port = g.ports[0]
            out.append(("filter", "FWKNOP_FORWARD -s %s -d %s -p %s --dport %d %s -j ACCEPT"
                        % (g.address, g.nat_ip, proto, g.nat_port, c)))
            if g.dnat:
                out.append(("nat", "FWKNOP_PREROUTING -s %s -p %s --dport %d %s -j DNAT "
                            "--to-destination %s:%d" % (g.address, proto, port, c, g.nat_ip, g.nat_port)))
            if g.snat:
                out.append(("nat", "FWKNOP_POSTROUTING -s %s -d %s %s -j SNAT --to-source %s"
                            % (g.address, g.nat_ip, c, g.snat)))
            elif g.masquerade:
                out.append(("nat", "FWKNOP_POSTROUTING -s %s -d %s %s -j MASQUERADE"
                            % (g.address, g.nat_ip, c)))
        elif g.kind == "forward_all":
            out.append(("filter", "FWKNOP_FORWARD -s %s %s -j ACCEPT" % (g.address, c)))
            if g.snat:
                out.append(("nat", "FWKNOP_POSTROUTING -s %s %s -j SNAT --to-source %s"
                            % (g.address, c, g.snat)))
            elif g.masquerade:
                out.append(("nat", "FWKNOP_POSTROUTING -s %s %s -j MASQUERADE" % (g.address, c)))
        else:
            raise FirewallError("iptables backend: unsupported grant kind %s" % g.kind)
        return out

    def _batch(self, tool, ops) -> None:
        by_table = {}
        for table, line in ops:
            by_table.setdefault(table, []).append(line)
        for table, lines in by_table.items():
            self._restore(tool, table, lines)

    def grant(self, g: Grant, now: int, old=None) -> None:
        """Add the rules; when extending, delete the old grant's rules in the same batch."""
        ops = [(t, "-A " + r) for t, r in self._rules(g)]
        if old is not None:
            ops += [(t, "-D " + r) for t, r in self._rules(old)]
        self._batch(self._tool(g.address), ops)

    def revoke(self, g: Grant) -> None:
        self._batch(self._tool(g.address), [(t, "-D " + r) for t, r in self._rules(g)])

    def expire_rules(self, now: int) -> int:
        """Delete every ``_exp_`` rule whose time has passed (crash recovery); returns count."""
        n = 0
        for tool in self._families():
            for table, _, chain in self._chains():
                try:
                    listing = run([tool, "-t", table, "-S", chain])
                except FirewallError:
                    continue
                dead = [l[3:] for l in listing.splitlines()
                        if l.startswith("-A ") and EXP_RE.search(l) and int(EXP_RE.search(l).group(1)) <= now]
                self._restore(tool, table, ["-D " + d for d in dead])
                n += len(dead)
        return n

    def _listing(self, tool: str, table: str, chain=None) -> str:
        """``-S`` output; "" when the chain does not exist; FirewallError when it cannot look
        (not root, no such table module)."""
        try:
            return run([tool, "-t", table, "-S"] + ([chain] if chain else []))
        except FirewallError as exc:
            if chain and ("No chain" in str(exc) or "does not exist" in str(exc)):
                return ""
            raise

    def list(self, now: int) -> list:
        out = []
        for tool in self._families():
            for l in self._listing(tool, "filter", "FWKNOP_INPUT").splitlines():
                m = re.search(r"-s (\S+?)(?:/\d+)? -p (\w+) .*--dport (\d+) .*_exp_(\d+)", l)
                if m and int(m.group(4)) > now:
                    out.append(Grant(m.group(1), [(m.group(2), int(m.group(3)))], int(m.group(4))))
        return out

    def _tables(self):
        return ("filter", "nat") if self.nat else ("filter",)

    def inspect(self, now: int):
        """The jumps from the built-in chains are the marker: a reload (``iptables -F``,
        ``iptables-restore`` of a saved file, ufw or netfilter-persistent) removes them, while
        an admin who deletes a grant rule or flushes FWKNOP_INPUT leaves them in place."""
        jumps, present, protected = [], set(), True
        for tool in self._families():
            text = "\n".join(self._listing(tool, t) for t in self._tables())
            lines = set(text.splitlines())
            for _, builtin, chain in self._chains():
                jumps.append("-A %s -j %s" % (builtin, chain) in lines)
            if self.protect_ports:
                protected = protected and "-A INPUT -j %s" % PROTECT in lines and all(
                    "-A %s -p %s -m %s --dport %d -j DROP" % (PROTECT, proto, proto, port) in lines
                    for proto, port in self.protect_ports)
            present.update(filter(None, (_ident(l) for l in lines)))
        marker = "jumps" if jumps and all(jumps) else None
        return Snapshot(marker, protected and marker is not None, present)

    def has(self, snapshot, g) -> bool:
        return all(_ident("-A " + r) in snapshot.present for _, r in self._rules(g))

    def change_notice(self) -> bool:
        """iptables-nft changes go through nf_tables and are multicast; iptables-legacy's
        are not: only a tool that says "(nf_tables)" in ``-V`` lets the watch stop polling."""
        try:
            tools = self._families()
            return bool(tools) and all("(nf_tables)" in run([t, "-V"]) for t in tools)
        except FirewallError:
            return False

    def revoke_address(self, address: str, now: int) -> list:
        """Delete every grant rule for ``address`` in spa-lite's chains (one batch per table)."""
        tool = self._tool(address)
        if tool not in self._families():
            return []
        want = _addr(address)
        grants = [g for g in self.list(now) if _addr(g.address) == want and tool == self._tool(g.address)]
        found = False
        for table, _, chain in self._chains():
            dead = [l[3:] for l in self._listing(tool, table, chain).splitlines()
                    if l.startswith("-A ") and _ident(l) and _ident(l)[1] == want]
            found = found or bool(dead)
            self._restore(tool, table, ["-D " + d for d in dead])
        return grants if found else []

    def flush(self, everything: bool = False) -> None:
        """Empty spa-lite's chains (grants); ``everything``: also remove the chains, the
        jumps and the PROTECT_PORTS drop."""
        for tool in self._families():
            for table, builtin, chain in CHAINS:
                steps = [[tool, "-t", table, "-F", chain]]
                if everything:
                    steps = [[tool, "-t", table, "-D", builtin, "-j", chain]] + steps + \
                        [[tool, "-t", table, "-X", chain]]
                for argv in steps:
                    try:
                        run(argv)
                    except FirewallError:
                        pass
            if not everything:
                continue
            for argv in ([tool, "-D", "INPUT", "-j", PROTECT], [tool, "-F", PROTECT], [tool, "-X", PROTECT]):
                try:
                    run(argv)
                except FirewallError:
                    pass


def _addr(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _ident(line: str):
    """(chain, source, dport or None, expiry) of a grant rule in ``-S`` form or as this
    backend writes it, or None for other rules: both spellings give the same tuple."""
    m = EXP_RE.search(line)
    if not line.startswith("-A ") or not m:
        return None
    src = re.search(r"-s (\S+?)(?:/\d+)? ", line)
    port = re.search(r"--dport (\d+)", line)
    return (line.split()[1], _addr(src.group(1)) if src else None,
            int(port.group(1)) if port else None, int(m.group(1)))
