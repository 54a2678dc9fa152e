"""The interface every firewall backend implements, and its error type.

A backend must apply each change completely or not at all, never raise for a failing
command (it raises FirewallError with the command's stderr, which the daemon logs before
carrying on), and use argument lists with a time limit, never a shell.
"""


class FirewallError(Exception):
    """A firewall change failed; the message includes the command and its stderr."""


class Snapshot:
    """What the daemon's watch sees of spa-lite's objects in the kernel, in one look.

    ``marker``: an identity of the objects spa-lite created (table and set handles, the jump
    rules) that a firewall reload or restart changes or removes; None when they are gone.
    ``protected``: the PROTECT_PORTS drop and the rules that use the grant sets are intact.
    ``present``: backend-specific identities of the grant elements/rules in the kernel, for
    ``Backend.has``. A grant missing while the marker is unchanged was revoked by an admin
    (``--fw-revoke``, ``--fw-flush``, ``nft delete element``); one missing after the marker
    changed was lost in a reload and is put back."""

    __slots__ = ("marker", "protected", "present")

    def __init__(self, marker, protected: bool, present) -> None:
        self.marker = marker
        self.protected = protected
        self.present = present


class Backend:
    """Base class: ``name`` plus the operations the daemon and the CLI use.

    Grants and protection are different things: ``flush()`` removes grants and leaves the
    PROTECT_PORTS drop, ``flush(everything=True)`` removes all that spa-lite added."""

    name = "base"
    #: True when the kernel removes expired grants itself (nft set timeouts), so the daemon
    #: need not call ``revoke`` on time for access to end.
    kernel_expiry = False

    def available(self) -> bool:
        """Whether this backend can run here (tools present, kernel support)."""
        raise NotImplementedError

    def setup(self, keep_grants: bool = False) -> None:
        """Create what the backend needs (tables, chains, sets, the PROTECT_PORTS drop);
        idempotent. ``keep_grants``: never remove live grants, even where the first start
        would (iptables FLUSH_IPT_AT_INIT), as a SIGHUP reload must not."""

    def grant(self, grant, now: int, old=None) -> None:
        """Open access until ``grant.expires``. ``old`` is the live grant being extended, if
        any: a backend without kernel timeouts replaces its rules in the same change."""
        raise NotImplementedError

    def revoke(self, grant) -> None:
        """Close access for a grant (expired, or flushed)."""
        raise NotImplementedError

    def list(self, now: int) -> list:
        """Live grants as the firewall knows them (for --fw-list and adoption at start).
        Raises FirewallError when it cannot look: "no grants" must mean none."""
        raise FirewallError("the %s backend cannot list grants" % self.name)

    def flush(self, everything: bool = False) -> None:
        """Remove every grant; with ``everything``, also the protection, chains and tables."""
        raise FirewallError("the %s backend cannot flush grants" % self.name)

    def revoke_address(self, address: str, now: int) -> list:
        """Remove every live grant for ``address`` (a strict IP literal); returns them."""
        raise FirewallError("the %s backend cannot revoke grants" % self.name)

    def inspect(self, now: int):
        """A Snapshot of spa-lite's objects in the kernel, or None if this backend cannot be
        watched (then a firewall reload is not noticed until the next start or SIGHUP)."""
        return None

    def has(self, snapshot, grant) -> bool:
        """Whether ``grant`` is fully present in ``snapshot``."""
        return True

    def change_notice(self) -> bool:
        """Whether every change to this backend's objects is multicast by the kernel on
        NFNLGRP_NFTABLES, so the watch can wait for it instead of polling."""
        return False


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

    def list(self, now: int) -> list:
        return []
