"""Live grants: re-knocks extend instead of piling up duplicates, and expiry is tracked so
the daemon can sleep in the kernel exactly until the next grant ends."""

from spa_lite.firewall.base import FirewallError


class GrantTable:
    """Grants by identity (``Grant.key()``), applied through one backend."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.live = {}

    def apply(self, grant, now: int):
        """Add or extend a grant. Returns "added" or "extended"; raises FirewallError."""
        key = grant.key()
        old = self.live.get(key)
        if old is not None and old.expires >= grant.expires:
            return "extended"   # the live grant already lasts longer: nothing to change
        self.backend.grant(grant, now, old)
        self.live[key] = grant
        return "extended" if old is not None else "added"

    def expire(self, now: int):
        """Revoke grants whose time is up; returns [(grant, error-or-None)]."""
        done = []
        for key, g in list(self.live.items()):
            if g.expires <= now:
                del self.live[key]
                err = None
                try:
                    self.backend.revoke(g)
                except FirewallError as exc:
                    err = str(exc)
                done.append((g, err))
        return done

    def next_expiry(self):
        return min((g.expires for g in self.live.values()), default=None)
