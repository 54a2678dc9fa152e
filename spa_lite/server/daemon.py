"""The server loop: block in the kernel until a packet or the next deadline, drain what is
queued, decide, apply, log. No sleep loop, so a flood is processed as fast as the CPU
allows and a lone knock is handled the moment it arrives.

Timers (grant expiry, CMD_CYCLE_CLOSE, the firewall watch, the junk summary) run when their
deadline has come, not on every wakeup; with nothing scheduled the loop sleeps until a
packet or a signal arrives, so an idle router is never woken by spa-lite."""

import os
import signal
import time

from spa_lite.firewall.base import FirewallError
from spa_lite.server import commands
from spa_lite.server.grants import GrantTable
from spa_lite.server.model import VERDICT_COMMAND, VERDICT_GRANT, VERDICT_PENDING
from spa_lite.server.policy import decide
from spa_lite.server.replay import ReplayCache
from spa_lite.server.watch import FirewallWatch

BATCH = 256           # candidates drained from one source per wakeup
IDLE_WAKEUP = 60.0    # seconds; the longest wait while something is scheduled (a clock step
                      # on a router without RTC then delays an expiry by at most this)
PROTO_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1}
_ACTING = (VERDICT_GRANT, VERDICT_COMMAND)   # the verdicts _act has something to do for


class _Wakeup:
    """Self-pipe that signal handlers write to, so a blocking poll returns at once."""

    wakes_only = True     # not a capture: the loop ends when the real sources are gone

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)

    def fileno(self):
        return self.r

    def read_batch(self, max_n):
        try:
            while os.read(self.r, 512):
                pass
        except OSError:
            pass
        return []

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class Daemon:
    def __init__(self, settings, sources, backend, events, clock=time.time, wait=None,
                 unwrap_http=None) -> None:
        self.s = settings
        self.sources = list(sources)
        self.backend = backend
        self.events = events
        self.clock = clock
        self.wait = wait
        self.unwrap_http = unwrap_http
        self.grants = GrantTable(backend)
        self.replay = ReplayCache(   # --test reads the file (same floor) but never writes
            settings.digest_file if settings.persistence else None,
            settings.policy.max_age, settings.policy.aging,
            getattr(settings, "guard_state_loss", "boot"), readonly=bool(settings.test))
        self._replay_loaded = False
        self.cycle_closes = []   # (time, command line, values)
        self.examined = 0
        self.packet_errors = 0
        self.stopping = False
        self._deadline = None    # when run_timers next has work (None: nothing scheduled)
        self.reload_pending = False
        self.on_reload = None    # callable(daemon) that re-reads the configuration (SIGHUP)
        self.watch = FirewallWatch(backend, self.grants, events.note)

    def use_backend(self, backend) -> None:
        """Switch to ``backend`` (set up already): SIGHUP with new PROTECT_PORTS."""
        self.backend = self.grants.backend = self.watch.backend = backend
        if not self.s.test:
            self.watch.start(self.clock())

    # -- one packet
    def handle(self, cand):
        now = self.clock()
        try:
            if self.s.http and self.unwrap_http is not None:
                un = self.unwrap_http(cand.payload, self.s.any_user_agent)
                if un is not None:
                    cand.payload, cand.xff = un
            inow = int(now)
            trace = [] if self.events.verbose else None
            d = decide(cand, self.s.stanzas, self.s.policy, self.replay, inow, trace)
            if d.verdict == VERDICT_PENDING:    # gpg is running: decided again when it is done
                return d
            applied = error = None
            if d.verdict in _ACTING:            # junk, replays and rejects change nothing
                applied, error = self._act(cand, d, inow)
            self.events.decision(cand, d, now, applied, error, trace)
            change = self.replay.status_change()
            if change:
                self.events.note(*change)
            return d
        except Exception as exc:  # a packet must never kill the daemon
            self.packet_errors += 1
            self.events.internal_error(cand, "%s: %s" % (type(exc).__name__, exc), now)
            return None

    def _act(self, cand, d, now: int):
        if d.verdict == VERDICT_COMMAND:
            return self._command(d, cand, d.command, now)
        if d.command:   # CMD_CYCLE stanza: the command is the grant
            return self._cycle_open(cand, d, now)
        if self.s.test:
            return "test mode", None
        try:
            return self.grants.apply(d.grant, now), None
        except FirewallError as exc:
            if not self.watch.enabled:
                return None, str(exc)
        # the firewall may have been reloaded since the last look: heal it, then try again
        self.watch.check(self.clock())
        try:
            return self.grants.apply(d.grant, now), None
        except FirewallError as exc:
            return None, str(exc)

    def _command(self, d, cand, cmdline, now):
        if self.s.test:
            return "test mode: not run", None
        st = self.s.stanzas[d.stanza - 1]
        rc, out = commands.run(cmdline, st.cmd_exec_user, st.cmd_exec_group)
        return "exit %s" % rc, (None if rc == 0 else "command failed: %s" % out)

    def _cycle_open(self, cand, d, now):
        st = self.s.stanzas[d.stanza - 1]
        if not d.grant.ports:   # the policy refuses these; never run with an empty $PORT
            return None, "no tcp/udp port for $PORT/$PROTO: CMD_CYCLE_OPEN not run"
        proto, port = d.grant.ports[0]
        msg = d.message
        values = {"IP": d.grant.address, "SRC": d.grant.address, "PKT_SRC": cand.src,
                  "DST": cand.dst, "PORT": port, "PROTO": PROTO_NUMBERS.get(proto, proto),
                  "TIMEOUT": msg.timestamp + d.timeout, "CLIENT_TIMEOUT": msg.client_timeout or 0}
        if self.s.test:
            return "test mode: CMD_CYCLE_OPEN not run", None
        rc, out = commands.run(commands.substitute(st.cmd_cycle_open, values),
                               st.cmd_exec_user, st.cmd_exec_group)
        close = st.cmd_cycle_close
        if close and close.upper() != "NONE":
            self.cycle_closes.append((now + d.timeout, commands.substitute(close, values), st))
        return "CMD_CYCLE_OPEN exit %s" % rc, (None if rc == 0 else "command failed: %s" % out)

    # -- timers
    def run_timers(self, now: int) -> None:
        if self.reload_pending:
            self.reload_pending = False
            if self.on_reload is not None:
                self.on_reload(self)
        if self.watch.due(self.clock()):
            self.watch.check(self.clock())
        if self.backend.kernel_expiry:
            # the kernel removes expired grants itself: just forget them
            for key, g in list(self.grants.live.items()):
                if g.expires <= now:
                    del self.grants.live[key]
                    self.events.note("info", "expired: %s for %s" % (
                        ",".join("%s/%d" % p for p in g.ports) or g.kind, g.address))
            self._cycle_and_tick(now)
            return
        for g, err in self.grants.expire(now):
            self.events.note("warning" if err else "info",
                             "expired: %s for %s%s" % (",".join("%s/%d" % p for p in g.ports) or g.kind,
                                                       g.address, "; firewall error: %s" % err if err else ""))
        self._cycle_and_tick(now)

    def _cycle_and_tick(self, now: int) -> None:
        due = [c for c in self.cycle_closes if c[0] <= now]
        if due:
            self.cycle_closes = [c for c in self.cycle_closes if c[0] > now]
            for _, cmdline, st in due:
                rc, out = commands.run(cmdline, st.cmd_exec_user, st.cmd_exec_group)
                self.events.note("info" if rc == 0 else "warning",
                                 "CMD_CYCLE_CLOSE exit %s%s" % (rc, "" if rc == 0 else ": " + out))
        self.events.tick(now)

    def next_deadline(self, now: float):
        """When the timers next have work (epoch seconds), or None: nothing is scheduled."""
        times = [t for t in (self.grants.next_expiry(),
                             min((c[0] for c in self.cycle_closes), default=None),
                             self.events.next_due()) if t is not None]
        if self.watch.enabled:        # the firewall watch (none in --test, none for command)
            times.append(self.watch.next_at())
        if self.reload_pending:       # SIGHUP arrived during this turn of the loop
            times.append(0.0)
        return min(times) if times else None

    def wake_timers(self) -> None:
        """Run the timers at the next turn of the loop (e.g. from a signal handler)."""
        self._deadline = 0.0

    def wait_ready(self, waitable, now: float):
        """Wait until the next deadline or until a source is readable: the sources to read
        (all of them if the wait function does not say which)."""
        d = self._deadline
        timeout = None if d is None else max(0.0, min(d - now, IDLE_WAKEUP))
        ready = self.wait(waitable, timeout)
        return ready if isinstance(ready, list) else waitable

    # -- the loop
    def load_replay(self) -> str:
        """Read the digest file (raises DigestFileError); the replay state in a few words,
        for the start line (``-t`` shows the same floor the real start applies)."""
        if not self._replay_loaded:
            self._replay_loaded = True
            self.replay.load(int(self.clock()))
            change = self.replay.status_change()
            if change:
                self.events.note(*change)
        now = self.clock()
        floor = self.replay.floor(now)
        if floor is None:
            return "replay guard: %s" % ("digest file %s" % self.s.digest_file
                                         if self.replay.path else "off")
        return "replay floor: %s, packets stamped before %s refused%s" % (
            self.replay.loss_reason, time.strftime("%H:%M:%S", time.localtime(floor)),
            " (for %d s more)" % (floor - now) if floor > now else " (already passed)")

    def run(self) -> int:
        if not self.s.test:
            self.watch.start(self.clock())
            notice = self.watch.listen(self.clock)   # the ruleset's change multicast, if any
            if notice is not None:
                self.sources.append(notice)
        self.load_replay()
        live = list(self.sources)
        handle, limit = self.handle, self.s.packet_limit
        now = self.clock()
        self.run_timers(int(now))
        self._deadline = self.next_deadline(now)
        while not self.stopping and any(not getattr(s, "wakes_only", False) for s in live):
            waitable = [s for s in live if s.fileno() is not None]
            if waitable and len(waitable) == len(live):
                ready = self.wait_ready(waitable, now)
            else:
                ready = list(live)          # a pcap file: read on, no waiting
            now = self.clock()
            ran = self._deadline is not None and now >= self._deadline
            if ran:
                self.run_timers(int(now))
            for src in ready:
                batch = src.read_batch(BATCH)
                if not batch and src.fileno() is None:   # a pcap file is exhausted
                    live.remove(src)
                    continue
                if limit and self.examined + len(batch) >= limit:
                    batch = batch[:limit - self.examined]
                    self.stopping = True
                for cand in batch:
                    handle(cand)
                self.examined += len(batch)
                if self.stopping:
                    break
            now = self.clock()
            self._deadline = self.next_deadline(now)
            if ran and self._deadline is not None and self._deadline <= now:
                self._deadline = int(now) + 1   # timers work in whole seconds: never spin
        return 0

    def install_signals(self) -> None:
        """SIGTERM/SIGINT stop the loop promptly, SIGHUP asks for a reload at the next turn
        of the loop (a self-pipe wakes the poll; nothing else runs in the handler)."""
        wake = _Wakeup()
        self.sources.append(wake)
        signal.set_wakeup_fd(wake.w)

        def stop(signum, frame):
            self.stopping = True

        def reload(signum, frame):
            self.reload_pending = True
            self.wake_timers()
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)
