"""Choosing the firewall backend from FIREWALL_TYPE (fwknopd.conf), with spa-lite's default:
fw4 on OpenWrt, else nftables where ``nft`` exists, else iptables."""

import os
import shutil

from spa_lite.errors import UsageError

KNOWN = ("nftables", "fw4", "iptables", "command")


def default_type() -> str:
    if os.path.exists("/etc/openwrt_release") and shutil.which("fw4"):
        return "fw4"
    if shutil.which("nft"):
        return "nftables"
    return "iptables"


def make_backend(settings):
    kind = settings.firewall_type or default_type()
    if kind not in KNOWN:
        raise UsageError("%s: FIREWALL_TYPE must be one of %s, not %r"
                         % (settings.conf.where.get("FIREWALL_TYPE", "FIREWALL_TYPE"),
                            ", ".join(KNOWN), kind))
    if kind == "nftables":
        from spa_lite.firewall.nftables import NftablesBackend
        b = NftablesBackend(settings.protect_ports,
                            nat=settings.policy.forwarding or settings.policy.local_nat)
    else:
        raise UsageError("FIREWALL_TYPE %s is not implemented in this version yet; use "
                         "nftables (any Linux with nft), -t/--test, or CMD_CYCLE_OPEN stanzas" % kind)
    if not b.available():
        raise UsageError("FIREWALL_TYPE %s: the %s tool is not installed" % (kind, b.nft))
    return b
