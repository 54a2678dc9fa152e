"""Checks the start runs before it binds or changes the firewall, shared with
``--check-config`` and ``-D`` so that a configuration they pass is one the start accepts.

Each failure is one line naming the keyword (with file:line) or the option, raised as
UsageError (exit 2)."""

import ipaddress
import os
import socket

from spa_lite.errors import UsageError
from spa_lite.firewall.base import FirewallError
from spa_lite.firewall.run import run

NEEDS_ROOT = "needs root (CAP_NET_ADMIN, CAP_NET_RAW)"
CAP_NET_ADMIN, CAP_NET_RAW = 12, 13


def check(s) -> None:
    """Everything short of binding and changing the firewall: the firewall type and its
    tool (and nft's JSON support, which listing and the watch use), the digest path, the
    capture interface."""
    if not s.test and not (s.stanzas and all(st.cmd_cycle_open for st in s.stanzas)):
        from spa_lite.firewall.select import make_backend
        backend = make_backend(s)       # unknown FIREWALL_TYPE, command without CMD_CYCLE_OPEN,
        if backend.name in ("nftables", "fw4"):        # missing tool: UsageError
            try:
                run([backend.nft, "-j", "-v"])
            except FirewallError:
                raise UsageError("FIREWALL_TYPE %s: %s has no JSON support (nft -j), which "
                                 "spa-lite needs to list grants and watch the firewall; install "
                                 "an nftables built with JSON" % (backend.name, backend.nft))
    if s.persistence:
        from spa_lite.server.replay import check_path
        check_path(s.digest_file)      # a symlink or a directory: one clear line (exit 2)
    # With uci (OpenWrt) the init script finds the device and waits for it to come up
    # (pppoe-wan exists only once the link is up), so only fwknopd.conf setups check it here.
    if s.capture == "packet" and not s.uci_file:
        try:
            socket.if_nametoindex(s.interface)
        except OSError:
            raise UsageError("%s: PCAP_INTF: no such network interface %r"
                             % (s.conf.where["PCAP_INTF"], s.interface))


def _capabilities():
    """The effective capability mask, or None where /proc does not tell."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return None


def missing_privileges(firewall: bool, capture: bool) -> list:
    caps = _capabilities()
    if caps is None:
        return [] if os.geteuid() == 0 else ["root"]
    need = ([("CAP_NET_ADMIN", CAP_NET_ADMIN)] if firewall else []) + \
        ([("CAP_NET_RAW", CAP_NET_RAW)] if capture else [])
    return [name for name, bit in need if not caps & (1 << bit)]


def _needs(s):
    """(firewall, capture): which privileges this configuration's start needs."""
    firewall = not s.test and not (s.stanzas and all(st.cmd_cycle_open for st in s.stanzas))
    return firewall, s.capture == "packet"


def need_privileges(s, firewall: bool, capture: bool) -> None:
    """Stop with one line before nft/iptables or the capture say it less clearly."""
    if missing_privileges(firewall, capture):
        raise UsageError(NEEDS_ROOT)


def warn_privileges(s) -> None:
    """--check-config and -D validate files, which needs no privilege: only say what the
    start will need."""
    if missing_privileges(*_needs(s)):
        import sys
        sys.stderr.write("spa-lite server: warning: the start %s\n" % NEEDS_ROOT)


def strict_address(text: str, where: str) -> str:
    """The canonical text of a strict IPv4/IPv6 literal (no scope, no prefix), or UsageError."""
    try:
        if "%" in text or "/" in text:
            raise ValueError
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise UsageError("%s: %r is not an IPv4 or IPv6 address" % (where, text))
