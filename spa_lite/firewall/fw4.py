"""fw4 backend (OpenWrt 22.03+): grants are elements of sets inside ``table inet fw4``.

An accept in a private table cannot override fw4's wan reject, so the sets and the rules
that use them live in fw4's own table, declared by include files fw4 renders into its
ruleset (``/usr/share/nftables.d/table-pre/spa-lite.nft`` and the ``chain-pre`` files for
input_wan, dstnat and forward_wan; shipped in ``openwrt/nftables.d``). ``fw4 reload`` (every
WAN reconnect) keeps set elements and their timers; ``service firewall restart`` recreates
the table with empty sets, and the daemon's watch re-adds live grants with their remaining
time within a few seconds.
"""

import shutil

from spa_lite.firewall.base import FirewallError
from spa_lite.firewall.nftables import NftablesBackend
from spa_lite.firewall.run import run

INCLUDE_DIR = "/usr/share/nftables.d"


class Fw4Backend(NftablesBackend):
    name = "fw4"
    SETS = {"allow4": "spa_allow4", "allow6": "spa_allow6", "dnat4": "spa_dnat4",
            "fwd4": "spa_fwd4"}

    def __init__(self, nft: str = "nft") -> None:
        NftablesBackend.__init__(self, (), nft, "fw4")

    def available(self) -> bool:
        return shutil.which(self.nft) is not None

    def setup(self) -> None:
        """fw4 owns the table: only check that our include files were rendered into it."""
        try:
            run([self.nft, "list", "set", "inet", "fw4", "spa_allow4"])
        except FirewallError:
            raise FirewallError("table inet fw4 has no set spa_allow4: install spa-lite's "
                                "nftables.d include files under %s and run 'fw4 reload'"
                                % INCLUDE_DIR)

    def _elements(self, g):
        out = NftablesBackend._elements(self, g)
        for name, _, _ in out:
            if name not in self.SETS:
                raise FirewallError("fw4 backend: %s grants for this address family are not "
                                    "supported" % g.kind)
        return out

    def flush(self) -> None:
        """Empty our sets; the table and its rules belong to fw4."""
        for name in self.SETS.values():
            try:
                run([self.nft, "flush", "set", "inet", "fw4", name])
            except FirewallError:
                pass
