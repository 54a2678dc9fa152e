"""The watch's three cases, decided from one Snapshot (no root needed; the namespace tests in
test_lifecycle.py prove the same against the real nft and iptables): a changed marker puts
protection and grants back, damaged protection is set up again, a grant missing under an
intact marker was revoked by an admin and is forgotten. Then when it looks: after the kernel's
change notification (debounced) or, without one, every WATCH_INTERVAL; an overflowed
notification socket means "look now"."""

import errno
import sys

from spa_lite.firewall.base import Backend, FirewallError, Snapshot
from spa_lite.grant import Grant
from spa_lite.server.grants import GrantTable
from spa_lite.server.watch import DEBOUNCE, SAFETY_INTERVAL, WATCH_INTERVAL, FirewallWatch
from tests.conftest import need_root, need_tool
from tests.netns import Lab


class KernelStandIn(Backend):
    """Holds 'kernel' state in memory: a generation (the marker), protection, elements."""

    name = "stand-in"

    def __init__(self):
        self.generation, self.protected, self.present = 1, True, set()
        self.setups = 0
        self.fail = False

    def setup(self, keep_grants=False):
        if self.generation is None:
            self.generation = 100 + self.setups
        self.protected = True
        self.setups += 1

    def grant(self, g, now, old=None):
        self.present.add(g.address)

    def revoke(self, g):
        self.present.discard(g.address)

    def inspect(self, now):
        if self.fail:
            raise FirewallError("nft -j list table failed: Operation not permitted")
        return Snapshot(self.generation, self.protected, set(self.present))

    def has(self, snapshot, g):
        return g.address in snapshot.present


def watch_with(grants_at, now=1000):
    k = KernelStandIn()
    table = GrantTable(k)
    for addr in grants_at:
        table.apply(Grant(addr, [("tcp", 22)], now + 60), now)
    lines = []
    w = FirewallWatch(k, table, lambda level, text: lines.append(text))
    w.start(now)
    return k, table, w, lines


def test_reload_restores_protection_and_every_grant():
    k, table, w, lines = watch_with(["10.213.1.2", "10.213.1.3"])
    k.generation, k.protected, k.present = None, False, set()     # nft flush ruleset
    assert not w.due(1000 + WATCH_INTERVAL - 0.5) and w.due(1000 + WATCH_INTERVAL)
    w.check(1003)
    assert k.protected and k.present == {"10.213.1.2", "10.213.1.3"}
    assert len(table.live) == 2 and w.marker == k.generation
    assert "firewall was reloaded" in lines[-1] and "restored: tcp/22 for 10.213.1.2 (57 s left)" in lines[-1]


def test_reload_without_grants_still_restores_protection():
    k, table, w, lines = watch_with([])
    k.generation, k.protected = None, False
    w.check(1003)
    assert k.protected and "no live grant to restore" in lines[-1]


def test_damaged_protection_is_set_up_again_and_grants_are_left_alone():
    k, table, w, lines = watch_with(["10.213.1.2"])
    k.protected = False
    k.present.clear()                       # an admin also removed the grant meanwhile
    w.check(1003)
    assert k.protected and k.present == set() and "protection restored" in lines[-1]
    w.check(1006)                           # the next look: the grant counts as revoked
    assert table.live == {} and "revoked: tcp/22 for 10.213.1.2" in lines[-1]


def test_admin_revoke_is_forgotten_and_never_put_back():
    k, table, w, lines = watch_with(["10.213.1.2", "10.213.1.3"])
    k.present.discard("10.213.1.2")         # spa-lite server --fw-revoke 10.213.1.2
    for t in (1003, 1006, 1009, 1012):
        w.check(t)
    assert k.present == {"10.213.1.3"} and k.setups == 0
    assert [g.address for g in table.live.values()] == ["10.213.1.3"]
    assert sum("revoked:" in l for l in lines) == 1


def test_a_grant_about_to_expire_is_not_called_revoked():
    k, table, w, lines = watch_with(["10.213.1.2"])
    k.present.clear()                       # the kernel's timeout ran a moment early
    w.check(1060)
    assert not lines


def test_a_failed_look_is_logged_and_changes_nothing():
    k, table, w, lines = watch_with(["10.213.1.2"])
    k.fail = True
    w.check(1003)
    assert len(table.live) == 1 and "firewall watch: nft -j list table failed" in lines[-1]


class NotifiedStandIn(KernelStandIn):
    def change_notice(self):
        return True


def test_without_change_notification_the_watch_polls_every_interval():
    k, table, w, lines = watch_with([])
    assert w.listen(lambda: 1000.0) is None and w.notice is None
    assert "firewall watch: every 3 s (the stand-in backend's changes are not multicast)" in lines
    assert not w.due(1002.9) and w.due(1000 + WATCH_INTERVAL)


def test_a_notification_burst_is_one_look_after_the_debounce_then_quiet():
    need_root()                         # joining NFNLGRP_NFTABLES needs CAP_NET_ADMIN
    k = NotifiedStandIn()
    lines = []
    w = FirewallWatch(k, GrantTable(k), lambda level, text: lines.append(text))
    w.start(1000)
    clock = [1000.0]
    notice = w.listen(lambda: clock[0])
    try:
        assert notice is not None and notice.fileno() is not None, lines
        assert "firewall watch: on the kernel's change notification (and every 300 s)" in lines
        assert not w.due(1000 + WATCH_INTERVAL) and w.next_at() == 1000 + SAFETY_INTERVAL
        clock[0] = 1010.0
        for _ in range(50):             # nft flush ruleset + a reload: a burst of messages
            notice.on_change()
            clock[0] += 0.001
        assert w.next_at() == 1010.0 + DEBOUNCE and not w.due(1010.1) and w.due(1010.2)
        w.check(1010.2)
        assert w.next_at() == 1010.2 + SAFETY_INTERVAL and not w.due(1100)
        w.backend = KernelStandIn()     # SIGHUP to a backend whose changes are not multicast
        w.start(1200)
        assert w.due(1200 + WATCH_INTERVAL)
    finally:
        notice.close()
    assert notice.fileno() is None


OVERFLOW = r"""
import subprocess, socket
from spa_lite.server.watch import ChangeNotice
hits = []
n = ChangeNotice(lambda: hits.append(1))
n.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)   # the kernel's minimum
rules = "add table inet spat_overflow\nadd set inet spat_overflow s { type ipv4_addr; }\n"
rules += "".join("add element inet spat_overflow s { 10.213.9.%d }\n" % i for i in range(1, 250))
subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
try:
    n.sock.recv(65536)
    n.sock.recv(65536)
    n.sock.recv(65536)
except OSError as exc:
    print("errno", exc.errno)
subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
print("batch", n.read_batch(256), "hits", len(hits))
print("batch", n.read_batch(256), "hits", len(hits))
"""


def test_a_receive_buffer_overflow_means_look_now_not_an_error():
    need_root()
    need_tool("nft")
    with Lab() as lab:
        ns = lab.ns("w")
        r = lab.run(ns, sys.executable, "-c", OVERFLOW, check=False)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    # the first overflow shows the kernel drops messages into a small buffer (ENOBUFS, 105)
    assert out[0] == "errno %d" % errno.ENOBUFS, r.stdout
    # read_batch after another overflow: no candidates, one "changed", no exception
    assert out[1] == "batch [] hits 1" and out[2] == "batch [] hits 1", r.stdout
