"""The firewall watch: every WATCH_INTERVAL seconds, one look at spa-lite's objects in the
kernel (``Backend.inspect``) decides between three cases.

- The marker changed or is gone (``nft flush ruleset``, a deleted table, ``service firewall
  restart``, ``iptables -F``): the firewall was reloaded under us. The protection is set up
  again and every live grant is put back with its remaining time.
- The marker is intact but the protection is damaged (a deleted rule, an emptied protect
  set): the protection is set up again; grants are left as they are.
- The marker is intact and a live grant is missing: an admin revoked it (``--fw-revoke``,
  ``--fw-flush``, ``nft delete element``). The daemon forgets it, so it stays revoked.

The kernel is the only state shared with the admin's commands: no lock or state file.
"""

from spa_lite.firewall.base import FirewallError

WATCH_INTERVAL = 3.0   # seconds between looks; also the time a reload leaves a port exposed
GRACE = 1              # a grant this close to its expiry may have just left the kernel


class FirewallWatch:
    def __init__(self, backend, grants, note) -> None:
        self.backend = backend
        self.grants = grants          # the daemon's GrantTable
        self.note = note              # note(level, text)
        self.marker = None
        self.enabled = False
        self.last = 0.0

    def start(self, now: float) -> None:
        """Take the marker of the objects ``setup`` just made."""
        self.enabled = False
        try:
            snap = self.backend.inspect(int(now))
        except FirewallError as exc:
            self.note("warning", "firewall watch off: %s" % exc)
            return
        if snap is not None:
            self.marker = snap.marker
            self.enabled = True
            self.last = now

    def due(self, now: float) -> bool:
        return self.enabled and now - self.last >= WATCH_INTERVAL

    def next_at(self) -> float:
        """When the next look is due (epoch seconds), for the loop's deadline."""
        return self.last + WATCH_INTERVAL

    def check(self, now: float) -> None:
        self.last = now
        inow = int(now)
        try:
            snap = self.backend.inspect(inow)
            if snap.marker is None or snap.marker != self.marker:
                self._reloaded(inow)
            elif not snap.protected:
                self.backend.setup()
                self.marker = self.backend.inspect(inow).marker
                self.note("warning", "protection restored: spa-lite's rules were changed under "
                                     "it (%s)" % self.backend.name)
            else:
                self._forget_revoked(snap, inow)
        except FirewallError as exc:
            self.note("warning", "firewall watch: %s" % exc)

    def _reloaded(self, now: int) -> None:
        self.backend.setup()
        back = []
        for g in list(self.grants.live.values()):
            if g.expires > now + GRACE:
                self.backend.grant(g, now, None)
                back.append(g)
        self.marker = self.backend.inspect(now).marker
        self.note("warning", "firewall was reloaded (%s): protection restored; %s" % (
            self.backend.name, "; ".join("restored: %s for %s (%d s left)" % (
                g.ports_text(), g.address, g.expires - now) for g in back)
            or "no live grant to restore"))

    def _forget_revoked(self, snap, now: int) -> None:
        for key, g in list(self.grants.live.items()):
            if g.expires > now + GRACE and not self.backend.has(snap, g):
                del self.grants.live[key]
                self.note("info", "revoked: %s for %s (removed from the firewall by an admin)"
                          % (g.ports_text(), g.address))
