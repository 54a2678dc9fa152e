"""fw4 backend (OpenWrt 22.03+): grants are elements of sets inside ``table inet fw4``.

An accept in a private table cannot override fw4's reject, so the sets and the rules that
use them live in fw4's own table, declared by include files fw4 renders into its ruleset
(shipped in ``openwrt/nftables.d``, installed under ``/usr/share/nftables.d``): the sets
in ``table-pre``, the accept rules in ``chain-pre/input`` and ``chain-pre/forward`` and the
NAT map in ``chain-pre/dstnat``. Those are fw4's base chains, which exist whatever the
zones are called: they run before fw4's per-zone dispatch, so the wiring holds with an
uplink zone not named ``wan``, several uplink zones, or a PPPoE device. (A file under
``chain-pre/input_wan`` is silently dropped by fw4 when no zone is named ``wan``.)

``setup()`` proves the wiring in the live ruleset: each set exists and a rule using it sits
in the fw4 chain hooked where it must act. Otherwise the daemon refuses to start, naming
what is missing, instead of logging grants that open nothing.

``fw4 reload`` (every WAN reconnect) keeps set elements and their timers; ``service
firewall restart`` recreates the table with empty sets, and the daemon's watch re-adds
live grants with their remaining time within a few seconds.
"""

import json
import shutil

from spa_lite.firewall.base import FirewallError, Snapshot
from spa_lite.firewall.nftables import NftablesBackend
from spa_lite.firewall.run import run

INCLUDE_DIR = "/usr/share/nftables.d"

#: set -> (hook of the fw4 base chain whose rules must use it, include file that does)
WIRING = {
    "spa_allow4": ("input", "chain-pre/input/spa-lite.nft"),
    "spa_allow6": ("input", "chain-pre/input/spa-lite.nft"),
    "spa_dnat4": ("prerouting", "chain-pre/dstnat/spa-lite.nft"),
    "spa_fwd4": ("forward", "chain-pre/forward/spa-lite.nft"),
}


def missing_wiring(ruleset: dict) -> list:
    """What ``nft -j list table inet fw4`` lacks for spa-lite's grants to take effect:
    a list of one-line reasons, empty when every set exists and is used by a rule in the
    base chain of its hook."""
    sets, hooks, used = set(), {}, {}
    for item in ruleset.get("nftables", []):
        if "set" in item or "map" in item:
            sets.add((item.get("set") or item.get("map"))["name"])
        elif "chain" in item and "hook" in item["chain"]:
            hooks[item["chain"]["name"]] = item["chain"]["hook"]
        elif "rule" in item:
            text = json.dumps(item["rule"].get("expr", []))
            for name in WIRING:
                if '"@%s"' % name in text:
                    used.setdefault(name, set()).add(item["rule"].get("chain"))
    out = []
    for name, (hook, include) in WIRING.items():
        if name not in sets:
            out.append("table inet fw4 has no set %s (install %s/table-pre/spa-lite.nft "
                       "and run 'fw4 reload')" % (name, INCLUDE_DIR))
        elif not any(hooks.get(c) == hook for c in used.get(name, ())):
            out.append("no rule in a fw4 %s hook chain uses set %s, so grants would open "
                       "nothing (install %s/%s and run 'fw4 reload')"
                       % (hook, name, INCLUDE_DIR, include))
    return out


class Fw4Backend(NftablesBackend):
    name = "fw4"
    SETS = {"allow4": "spa_allow4", "allow6": "spa_allow6", "dnat4": "spa_dnat4",
            "fwd4": "spa_fwd4"}

    def __init__(self, nft: str = "nft") -> None:
        NftablesBackend.__init__(self, (), nft, "fw4")

    def available(self) -> bool:
        return shutil.which(self.nft) is not None

    def setup(self, keep_grants: bool = False) -> None:
        """fw4 owns the table: prove our include files were rendered into it and wired
        where they act, or raise FirewallError naming the first thing missing."""
        try:
            out = run([self.nft, "-j", "list", "table", "inet", "fw4"])
        except FirewallError as exc:
            if "No such file" in str(exc):
                raise FirewallError("there is no table inet fw4: is the firewall (fw4) "
                                    "running?")
            raise
        try:
            ruleset = json.loads(out)
        except ValueError:
            raise FirewallError("'nft -j' gave no JSON: install nftables-json (not "
                                "nftables-nojson)")
        missing = missing_wiring(ruleset)
        if missing:
            raise FirewallError(missing[0])

    def _elements(self, g):
        out = NftablesBackend._elements(self, g)
        for name, _, _ in out:
            if name not in self.SETS:
                raise FirewallError("fw4 backend: %s grants for this address family are not "
                                    "supported" % g.kind)
        return out

    def inspect(self, now: int):
        """One ``nft -j list table inet fw4`` (one process, which costs a router more than
        parsing the table). The marker is the handle of the table and of our sets: ``fw4
        reload`` keeps them (and the elements), ``service firewall restart`` makes a new
        table (whose sets may get their old handles back; the table never does)."""
        objects = self._table_json()
        ours = set(self.SETS.values())
        handles = tuple(sorted((k, o[k].get("name"), o[k].get("handle")) for o in objects
                               for k in ("table", "set", "map")
                               if k in o and (k == "table" or o[k].get("name") in ours)))
        if len(handles) < len(ours) + 1:
            return Snapshot(None, False, set())
        sets = self._grant_sets(objects)
        present = {(name, key) for name, elems in sets.items() for key, _, _ in elems}
        return Snapshot(handles, True, present)

    def flush(self, everything: bool = False) -> None:
        """Empty our sets; the table and its rules belong to fw4 (so ``everything`` is the
        same: there is no spa-lite protection to remove)."""
        for key, name in self.SETS.items():
            try:
                run([self.nft, "flush", "map" if key.startswith("dnat") else "set", "inet",
                     "fw4", name])
            except FirewallError:
                pass
