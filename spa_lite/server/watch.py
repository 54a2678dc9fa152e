"""The firewall watch: one look at spa-lite's objects in the kernel (``Backend.inspect``)
decides between three cases.

- The marker changed or is gone (``nft flush ruleset``, a deleted table, ``service firewall
  restart``, ``iptables -F``): the firewall was reloaded under us. The protection is set up
  again and every live grant is put back with its remaining time.
- The marker is intact but the protection is damaged (a deleted rule, an emptied protect
  set): the protection is set up again; grants are left as they are.
- The marker is intact and a live grant is missing: an admin revoked it (``--fw-revoke``,
  ``--fw-flush``, ``nft delete element``). The daemon forgets it, so it stays revoked.

The kernel is the only state shared with the admin's commands: no lock or state file.

When to look: the kernel multicasts every nftables ruleset change (nft, fw4, iptables-nft) on
netlink group NFNLGRP_NFTABLES. Where the backend's changes go through nf_tables and that
socket opens, the watch looks DEBOUNCE seconds after the first message of a burst (a flush
plus an fw4 reload is hundreds of messages; spa-lite's own changes notify too, and that look
then finds an intact marker) and otherwise only every SAFETY_INTERVAL, so an idle router is
not woken and no nft process is started. Elsewhere (iptables-legacy, no permission, an old
kernel) it polls every WATCH_INTERVAL seconds.
"""

import errno
import socket

from spa_lite.firewall.base import FirewallError

WATCH_INTERVAL = 3.0     # seconds between looks without change notification; also the time
                         # a reload then leaves a port exposed
SAFETY_INTERVAL = 300.0  # seconds between looks with change notification (a lost message)
DEBOUNCE = 0.2           # seconds from the first notification of a burst to the look
GRACE = 1                # a grant this close to its expiry may have just left the kernel
NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
NOTICE_RCVBUF = 1 << 18  # bytes; an overflow (ENOBUFS) only means "look now"
NOTICE_DRAIN = 4096      # messages read per wakeup at most (the rest wakes the next poll)


class ChangeNotice:
    """The nftables change multicast as a source in the daemon's wait set: reading it yields
    no candidates, it only tells the watch that the ruleset changed."""

    wakes_only = True     # not a capture: the loop ends when the real sources are gone

    def __init__(self, on_change) -> None:
        self.on_change = on_change          # on_change(): the ruleset changed, look soon
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, NOTICE_RCVBUF)
            except OSError:
                pass                        # the default buffer works; overflows just look
            sock.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def fileno(self):
        return self.sock.fileno() if self.sock is not None else None

    def read_batch(self, max_n):
        changed = False
        for _ in range(NOTICE_DRAIN):
            try:
                if not self.sock.recv(65536):
                    break
                changed = True
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                changed = True              # ENOBUFS: messages were lost, so look
                if exc.errno != errno.ENOBUFS:
                    break
        if changed:
            self.on_change()
        return []

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class FirewallWatch:
    def __init__(self, backend, grants, note) -> None:
        self.backend = backend
        self.grants = grants          # the daemon's GrantTable
        self.note = note              # note(level, text)
        self.marker = None
        self.enabled = False
        self.last = 0.0
        self.notice = None            # the ChangeNotice source, once listen() opened it
        self.notified = False         # whether the backend's changes reach that source
        self.changed_at = None        # when the first unlooked-at notification came
        self.clock = None

    def listen(self, clock):
        """Open the change notification when the backend's changes are multicast; the source
        for the daemon's wait set, or None (then the watch polls). Says which, once."""
        self.clock = clock
        if not self.enabled:
            return None
        why = None
        try:
            if self.backend.change_notice():
                self.notice = ChangeNotice(self._changed)
                self.notified = True
            else:
                why = "the %s backend's changes are not multicast" % self.backend.name
        except (OSError, AttributeError) as exc:   # no permission, old kernel, not Linux
            why = "no nftables change notification: %s" % (getattr(exc, "strerror", None) or exc)
        if self.notice is not None:
            self.note("info", "firewall watch: on the kernel's change notification "
                              "(and every %d s)" % SAFETY_INTERVAL)
        else:
            self.note("info", "firewall watch: every %d s (%s)" % (WATCH_INTERVAL, why))
        return self.notice

    def _changed(self) -> None:
        if self.changed_at is None:
            self.changed_at = self.clock()

    def interval(self) -> float:
        return SAFETY_INTERVAL if self.notified else WATCH_INTERVAL

    def start(self, now: float) -> None:
        """Take the marker of the objects ``setup`` just made (also for a new backend after
        SIGHUP: whether its changes are multicast is asked again)."""
        self.enabled = False
        if self.notice is not None:
            self.notified = self.backend.change_notice()
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
        return self.enabled and now >= self.next_at()

    def next_at(self) -> float:
        """When the next look is due (epoch seconds), for the loop's deadline."""
        t = self.last + self.interval()
        return t if self.changed_at is None else min(t, self.changed_at + DEBOUNCE)

    def check(self, now: float) -> None:
        self.last = now
        self.changed_at = None        # what notified before this look is seen by it
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
