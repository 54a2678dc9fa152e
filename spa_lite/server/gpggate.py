"""gpg off the daemon's loop, with a bound on what a flood can make it do.

Without an HMAC key a GnuPG stanza cannot tell junk from a knock before gpg has run, and a
gpg run costs milliseconds of CPU (a new process, an RSA decryption) where a junk packet
costs microseconds. So gpg runs are a budget:

- per source address: ``PER_SOURCE_RATE`` runs/s (burst ``PER_SOURCE_BURST``), so one
  flooding address cannot crowd out a knock from another;
- in total: ``GLOBAL_RATE`` runs/s (burst ``GLOBAL_BURST``), so the router's CPU spent on
  gpg is bounded whatever the number of sources;
- a queue of ``QUEUE_MAX`` admitted packets; when full the oldest is dropped (its knock is
  older: a retry is newer), and one worker thread runs gpg (each run time-limited).

A packet over budget is junk with the reason said (and counted in the junk summary).

How the daemon uses it: the gate is the ``opts.gpg`` of the policy and one more capture
source. The policy's first pass on a packet asks ``decrypt``, which queues the job and
answers PENDING; the worker writes a byte into a pipe when gpg is done, the daemon's poll
wakes on it, ``read_batch`` hands the packet back and the daemon decides it again as if it
had just arrived, this time with gpg's answer at hand. The loop itself does not change and
never waits for gpg.
"""

import collections
import os
import threading
import time

from spa_lite import gpg
from spa_lite.server import gpgspa

GLOBAL_RATE = 10.0        # gpg runs per second, all sources together
GLOBAL_BURST = 10
PER_SOURCE_RATE = 1.0     # gpg runs per second for one source address
PER_SOURCE_BURST = 3
QUEUE_MAX = 8             # admitted packets waiting for the worker (oldest dropped)
SOURCES_MAX = 4096        # per-source buckets kept (the fullest ones are forgotten first)


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens = burst
        self.stamp = now

    def take(self, rate: float, burst: float, now: float) -> bool:
        self.tokens = min(burst, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _Job:
    __slots__ = ("cand", "key", "st", "ct", "result")

    def __init__(self, cand, key, st, ct) -> None:
        self.cand, self.key, self.st, self.ct, self.result = cand, key, st, ct, None


class GpgGate:
    """The daemon's opener for GnuPG stanzas: budgeted, queued, one worker thread."""

    def __init__(self, clock=time.monotonic, timeout: float = gpg.RUN_TIMEOUT,
                 runner=gpgspa.run_decrypt) -> None:
        self.clock = clock
        self.timeout = timeout
        self.runner = runner
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)
        self.lock = threading.Condition()
        self.queue = collections.deque()
        self.done = []                 # finished jobs, handed back by read_batch
        self.delivered = {}            # id(cand) -> (cand, {job key: result}) of the last batch
        self.total = _Bucket(GLOBAL_BURST, clock())
        self.sources = {}
        self.runs = self.dropped = self.refused = 0
        self.stopping = False
        self.worker = threading.Thread(target=self._work, name="spa-lite-gpg", daemon=True)
        self.worker.start()

    # -- the policy side (daemon thread)
    def decrypt(self, st, cand, ct: bytes):
        key = gpgspa.job_key(st)
        got = self.delivered.get(id(cand))
        if got is not None and got[0] is cand and key in got[1]:
            return got[1][key]
        now = self.clock()
        src = cand.source_id
        bucket = self.sources.get(src)
        if bucket is None:
            if len(self.sources) >= SOURCES_MAX:
                self._forget(now)
            bucket = self.sources[src] = _Bucket(PER_SOURCE_BURST, now)
        if not bucket.take(PER_SOURCE_RATE, PER_SOURCE_BURST, now):
            self.refused += 1
            return gpg.GpgError("budget", "over the gpg budget for this source (%g runs/s): "
                                "flood?" % PER_SOURCE_RATE)
        if not self.total.take(GLOBAL_RATE, GLOBAL_BURST, now):
            self.refused += 1
            return gpg.GpgError("budget", "over the total gpg budget (%g runs/s): flood?"
                                % GLOBAL_RATE)
        with self.lock:
            if len(self.queue) >= QUEUE_MAX:
                old = self.queue.popleft()
                old.result = gpg.GpgError("budget", "dropped from the full gpg queue (flood?)")
                self.done.append(old)
                self.dropped += 1
                self._poke()
            self.queue.append(_Job(cand, key, st, ct))
            self.lock.notify()
        return gpgspa.PENDING

    def _forget(self, now: float) -> None:
        """Drop the buckets that are full again (sources quiet for a while)."""
        full = [s for s, b in self.sources.items()
                if b.tokens + (now - b.stamp) * PER_SOURCE_RATE >= PER_SOURCE_BURST]
        for s in full or list(self.sources)[:len(self.sources) // 2]:
            del self.sources[s]

    # -- the capture-source side (daemon thread)
    def fileno(self) -> int:
        return self.r

    def read_batch(self, max_n: int):
        try:
            while os.read(self.r, 512):
                pass
        except OSError:
            pass
        with self.lock:
            jobs, self.done = self.done, []
        self.delivered = {}
        out = []
        for job in jobs:
            entry = self.delivered.get(id(job.cand))
            if entry is None:
                entry = self.delivered[id(job.cand)] = (job.cand, {})
                out.append(job.cand)
            entry[1][job.key] = job.result
        return out

    def close(self) -> None:
        with self.lock:
            self.stopping = True
            self.lock.notify()
        self.worker.join(self.timeout + 1)
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- the worker thread
    def _poke(self) -> None:
        try:
            os.write(self.w, b"g")
        except OSError:
            pass   # the pipe is full: the daemon is already due to wake

    def _work(self) -> None:
        while True:
            with self.lock:
                while not self.queue and not self.stopping:
                    self.lock.wait()
                if self.stopping:
                    return
                job = self.queue.popleft()
            job.result = self.runner(job.st, job.ct, self.timeout)
            with self.lock:
                self.runs += 1
                self.done.append(job)
            self._poke()
