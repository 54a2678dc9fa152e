"""The watch's three cases, decided from one Snapshot (no root needed; the namespace tests in
test_lifecycle.py prove the same against the real nft and iptables): a changed marker puts
protection and grants back, damaged protection is set up again, a grant missing under an
intact marker was revoked by an admin and is forgotten."""

from spa_lite.firewall.base import Backend, FirewallError, Snapshot
from spa_lite.grant import Grant
from spa_lite.server.grants import GrantTable
from spa_lite.server.watch import WATCH_INTERVAL, FirewallWatch


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
