"""The daemon loop's waiting: timers run when their deadline comes, not on every wakeup, and
an idle daemon (no traffic, nothing scheduled) sleeps until a packet or a signal arrives, so
a router that is not being knocked on is never woken by spa-lite."""

import os

from spa_lite.firewall.base import NullBackend
from spa_lite.server import daemon as daemon_mod
from spa_lite.server.events import JUNK_BURST, EventSink
from tests.test_daemon_events import cand, knock, settings_for


class PipeSource:
    """A live-looking source (it has a file descriptor) fed by the test."""

    def __init__(self):
        self.r, self.w = os.pipe()
        self.queue = []

    def fileno(self):
        return self.r

    def read_batch(self, n):
        out, self.queue = self.queue[:n], self.queue[n:]
        return out

    def close(self):
        os.close(self.r)
        os.close(self.w)


class Script:
    """A wait function that records each timeout and runs the next step of the test."""

    def __init__(self, steps):
        self.steps = list(steps)
        self.timeouts = []

    def __call__(self, sources, timeout):
        self.timeouts.append(timeout)
        if self.steps:
            self.steps.pop(0)()
        return list(sources)


def make(steps, clock, test=False):
    src = PipeSource()
    sink = EventSink(log=lambda level, text: None)
    script = Script(steps)
    d = daemon_mod.Daemon(settings_for(test=test), [src], NullBackend(), sink, clock=clock,
                          wait=script)
    return d, src, script


def test_an_idle_daemon_waits_without_a_timeout():
    d, src, script = make([], clock=lambda: 1000.0)
    script.steps = [lambda: setattr(d, "stopping", True)]
    d.run()
    src.close()
    assert script.timeouts == [None]


def test_timers_do_not_run_on_every_wakeup():
    now = {"t": 1000.0}
    d, src, script = make([], clock=lambda: now["t"], test=True)
    calls = []
    real = d.run_timers

    def counting(t):
        calls.append(t)
        real(t)
    d.run_timers = counting

    def junk():
        now["t"] += 0.01
        src.queue.append(cand(payload=b"8" + b"A" * 182))
    steps = [junk] * 200 + [lambda: setattr(d, "stopping", True)]
    script.steps = steps
    d.run()
    src.close()
    assert d.examined == 200
    assert calls == [1000]                       # once at start, never per wakeup
    # junk beyond the logged burst waits for its summary: one deadline, a minute ahead
    assert d.events._suppressed["junk"] == 200 - JUNK_BURST
    assert 55 < script.timeouts[-1] <= 60


def test_a_grant_sets_the_next_deadline_and_expires_on_it():
    now = {"t": 1000.0}
    d, src, script = make([], clock=lambda: now["t"])

    def knock_once():
        src.queue.append(cand(payload=knock("5555555555555555", now["t"])))

    def later():
        now["t"] = 1031.0
    script.steps = [knock_once, later, lambda: setattr(d, "stopping", True)]
    d.run()
    src.close()
    assert script.timeouts[0] is None
    assert script.timeouts[1] == 30.0            # FW_ACCESS_TIMEOUT 30: the grant's expiry
    assert len(d.backend.revoked) == 1 and not d.grants.live
    assert script.timeouts[2] is None            # nothing left to do: sleep again
