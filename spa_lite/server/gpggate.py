"""gpg off the daemon's loop, with a bound on what a flood can make it do.

Without an HMAC key a GnuPG stanza cannot tell junk from a knock before gpg has run, and a
gpg run costs far more than a junk packet: a new process and an RSA decryption, ~10 ms; and
with a passphrase on the server key gpg-agent re-derives the key from the (cached)
passphrase for every use, 0.1-1 s of CPU (measured on the benchmark VM). So gpg is a budget,
counted both in runs and in seconds of gpg time. Admission reserves the expected time of a
failed run (a running average); when the run ends a failure is charged what it really took,
a success is refunded (a valid, signed knock costs its sender and the total nothing, so a
user's knocks are not held back by their own slow runs, nor by a flood's debt):

- per source address: ``PER_SOURCE_RATE`` runs/s (burst ``PER_SOURCE_BURST``) and
  ``PER_SOURCE_SHARE`` s of gpg time per second (burst ``PER_SOURCE_SECONDS``), so one
  flooding address cannot crowd out a knock from another;
- in total: ``GLOBAL_RATE`` runs/s (burst ``GLOBAL_BURST``) and ``GLOBAL_SHARE`` s/s (burst
  ``GLOBAL_SECONDS``) of reserved time, so the CPU spent on gpg is bounded whatever the number
  of sources (only a source's own bucket pays a slow failure's true cost: one flooding source
  must not put the total in debt and lock everybody else out);
- a queue of ``QUEUE_MAX`` admitted packets and ``WORKERS`` threads running gpg (each run
  time-limited). A job is ranked by how much of its source's budget was already used when
  it was admitted; workers take the lowest rank first (oldest first among equals), and at
  most one job of a busy source (rank above ``QUIET_RANK``) runs at a time, so a quiet
  source's knock starts at once even while a flood's run is in progress. A full queue drops
  the oldest job of the highest rank (its sender is the busiest; a retry is newer).

A packet over budget is junk with the reason said (and counted in the junk summary).

How the daemon uses it: the gate is the ``opts.gpg`` of the policy and one more capture
source. The policy's first pass on a packet asks ``decrypt``, which queues the job and
answers PENDING; the worker writes a byte into a pipe when gpg is done, the daemon's poll
wakes on it, ``read_batch`` hands the packet back and the daemon decides it again as if it
had just arrived, this time with gpg's answer at hand. The loop itself does not change and
never waits for gpg.
"""

import os
import threading
import time

from spa_lite import gpg
from spa_lite.server import gpgspa

GLOBAL_RATE = 10.0        # gpg runs per second, all sources together
GLOBAL_BURST = 10
GLOBAL_SHARE = 1.0        # seconds of gpg time per second, all sources (one core at most)
GLOBAL_SECONDS = 3.0
PER_SOURCE_RATE = 1.0     # gpg runs per second for one source address
PER_SOURCE_BURST = 3
PER_SOURCE_SHARE = 0.2    # seconds of gpg time per second for one source address
PER_SOURCE_SECONDS = 1.0
QUEUE_MAX = 8             # admitted packets waiting for the worker (oldest dropped)
SOURCES_MAX = 4096        # per-source buckets kept (the fullest ones are forgotten first)
WORKERS = 2               # gpg runs at once: one for busy sources, one kept for quiet ones
QUIET_RANK = 1.5          # rank of a source that used at most one run of its burst


class _Bucket:
    """Token bucket for runs (``tokens``) and gpg seconds (``seconds``, may go into debt)."""
    __slots__ = ("tokens", "seconds", "stamp")

    def __init__(self, burst: float, seconds: float, now: float) -> None:
        self.tokens = burst
        self.seconds = seconds
        self.stamp = now

    def take(self, rate: float, burst: float, share: float, cap: float, now: float,
             cost: float) -> bool:
        dt = now - self.stamp
        self.tokens = min(burst, self.tokens + dt * rate)
        self.seconds = min(cap, self.seconds + dt * share)
        self.stamp = now
        if self.tokens >= 1.0 and self.seconds > 0.0:
            self.tokens -= 1.0
            self.seconds -= cost
            return True
        return False


class _Job:
    __slots__ = ("cand", "key", "st", "ct", "rank", "bucket", "cost", "result", "took")

    def __init__(self, cand, key, st, ct, rank: float, bucket, cost: float) -> None:
        self.cand, self.key, self.st, self.ct, self.rank = cand, key, st, ct, rank
        self.bucket = bucket
        self.cost = cost          # seconds reserved at admission
        self.result = None
        self.took = 0.0


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
        self.queue = []
        self.done = []                 # finished jobs, handed back by read_batch
        self.delivered = {}            # id(cand) -> (cand, {job key: result}) of the last batch
        self.total = _Bucket(GLOBAL_BURST, GLOBAL_SECONDS, clock())
        self.sources = {}
        self.runs = self.dropped = self.refused = 0
        self.fail_cost = 1.0           # running average of a failed run's seconds (starts high:
                                       # a passphrase-protected key costs about that per run)
        self.stopping = False
        self.busy_running = 0
        self.workers = [threading.Thread(target=self._work, name="spa-lite-gpg", daemon=True)
                        for _ in range(WORKERS)]
        for w in self.workers:
            w.start()

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
            bucket = self.sources[src] = _Bucket(PER_SOURCE_BURST, PER_SOURCE_SECONDS, now)
        cost = self.fail_cost
        if not bucket.take(PER_SOURCE_RATE, PER_SOURCE_BURST, PER_SOURCE_SHARE,
                           PER_SOURCE_SECONDS, now, cost):
            self.refused += 1
            return gpg.GpgError("budget", "over the gpg budget for this source (%g runs/s, %g s "
                                "of gpg per s): flood?" % (PER_SOURCE_RATE, PER_SOURCE_SHARE))
        if not self.total.take(GLOBAL_RATE, GLOBAL_BURST, GLOBAL_SHARE, GLOBAL_SECONDS, now, cost):
            bucket.seconds += cost               # not run: the source gets its reservation back
            self.refused += 1
            return gpg.GpgError("budget", "over the total gpg budget (%g runs/s, %g s of gpg "
                                "per s): flood?" % (GLOBAL_RATE, GLOBAL_SHARE))
        # a quiet source ranks ~1, a busy one (runs used, gpg seconds owed) higher
        rank = PER_SOURCE_BURST - bucket.tokens + max(0.0, -bucket.seconds) / PER_SOURCE_SECONDS
        with self.lock:
            if len(self.queue) >= QUEUE_MAX:
                top = max(j.rank for j in self.queue)
                old = self.queue.pop(next(i for i, j in enumerate(self.queue) if j.rank == top))
                old.result = gpg.GpgError("budget", "dropped from the full gpg queue (flood?)")
                self.done.append(old)
                self.dropped += 1
                self._poke()
            self.queue.append(_Job(cand, key, st, ct, rank, bucket, cost))
            self.lock.notify_all()
        return gpgspa.PENDING

    def _forget(self, now: float) -> None:
        """Drop the buckets that are full again (sources quiet for a while)."""
        full = [s for s, b in self.sources.items()
                if b.tokens + (now - b.stamp) * PER_SOURCE_RATE >= PER_SOURCE_BURST
                and b.seconds + (now - b.stamp) * PER_SOURCE_SHARE >= PER_SOURCE_SECONDS]
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
            if isinstance(job.result, gpg.GpgError) and job.result.code != "budget":
                job.bucket.seconds -= job.took - job.cost   # its source pays what it took
                self.fail_cost += (job.took - self.fail_cost) / 4.0
            else:                                    # a knock (or a drop) is refunded
                job.bucket.seconds += job.cost
                self.total.seconds += job.cost
            entry = self.delivered.get(id(job.cand))
            if entry is None:
                entry = self.delivered[id(job.cand)] = (job.cand, {})
                out.append(job.cand)
            entry[1][job.key] = job.result
        return out

    def close(self) -> None:
        with self.lock:
            self.stopping = True
            self.lock.notify_all()
        for w in self.workers:
            w.join(self.timeout + 1)
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

    def _next(self):
        """The job to run now (lowest rank, oldest first), or None; under the lock."""
        if not self.queue:
            return None
        low = min(j.rank for j in self.queue)
        if low > QUIET_RANK and self.busy_running:
            return None
        return self.queue.pop(next(i for i, j in enumerate(self.queue) if j.rank == low))

    def _work(self) -> None:
        while True:
            with self.lock:
                job = None
                while not self.stopping:
                    job = self._next()
                    if job is not None:
                        break
                    self.lock.wait()
                if self.stopping:
                    return
                busy = job.rank > QUIET_RANK
                self.busy_running += busy
            t0 = time.monotonic()
            job.result = self.runner(job.st, job.ct, self.timeout)
            job.took = time.monotonic() - t0
            with self.lock:
                self.busy_running -= busy
                self.runs += 1
                self.done.append(job)
                self.lock.notify_all()
            self._poke()
