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
    elif kind == "fw4":
        from spa_lite.firewall.fw4 import Fw4Backend
        b = Fw4Backend()
    elif kind == "iptables":
        from spa_lite.firewall.iptables import IptablesBackend
        b = IptablesBackend(settings.protect_ports,
                            nat=settings.policy.forwarding or settings.policy.local_nat,
                            flush_at_init=settings.conf.flag("FLUSH_IPT_AT_INIT"))
    elif kind == "command":
        from spa_lite.firewall.command import CommandBackend
        open_cmd = settings.conf.get("CMD_CYCLE_OPEN").strip()
        if not open_cmd:
            raise UsageError("%s: FIREWALL_TYPE command needs CMD_CYCLE_OPEN in fwknopd.conf"
                             % settings.conf.where.get("FIREWALL_TYPE"))
        b = CommandBackend(open_cmd, settings.conf.get("CMD_CYCLE_CLOSE").strip())
    else:
        raise UsageError("FIREWALL_TYPE %s is not known" % kind)
    if not b.available():
        raise UsageError("FIREWALL_TYPE %s: the %s tool is not installed" % (kind, b.nft))
    return b
