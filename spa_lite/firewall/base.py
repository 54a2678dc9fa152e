"""The interface every firewall backend implements, and its error type.

A backend must apply each change completely or not at all, never raise for a failing
command (it raises FirewallError with the command's stderr, which the daemon logs before
carrying on), and use argument lists with a time limit, never a shell.
"""


class FirewallError(Exception):
    """A firewall change failed; the message includes the command and its stderr."""


class Backend:
    """Base class: ``name`` plus the six operations the daemon uses."""

    name = "base"
    #: True when the kernel removes expired grants itself (nft set timeouts), so the daemon
    #: need not call ``revoke`` on time for access to end.
    kernel_expiry = False

    def available(self) -> bool:
        """Whether this backend can run here (tools present, kernel support)."""
        raise NotImplementedError

    def setup(self) -> None:
        """Create what the backend needs (tables, chains, sets) before the first grant."""

    def grant(self, grant, now: int, old=None) -> None:
        """Open access until ``grant.expires``. ``old`` is the live grant being extended, if
        any: a backend without kernel timeouts replaces its rules in the same change."""
        raise NotImplementedError

    def revoke(self, grant) -> None:
        """Close access for a grant (expired, or flushed)."""
        raise NotImplementedError

    def list(self, now: int) -> list:
        """Live grants as the firewall knows them (for --fw-list and restore)."""
        return []

    def flush(self) -> None:
        """Remove everything this backend added."""

    def restore(self, grants, now: int) -> None:
        """Re-add live grants after the firewall was reloaded underneath us."""
        for g in grants:
            if g.expires > now:
                self.grant(g, now, None)


class NullBackend(Backend):
    """``--test`` mode: decisions are made and logged, the firewall is never touched."""

    name = "test"
    kernel_expiry = False

    def __init__(self) -> None:
        self.granted = []
        self.revoked = []

    def available(self) -> bool:
        return True

    def grant(self, grant, now: int, old=None) -> None:
        self.granted.append(grant)

    def revoke(self, grant) -> None:
        self.revoked.append(grant)
