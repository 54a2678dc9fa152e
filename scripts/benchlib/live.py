"""What the live measurements share: junk pools, a daemon's CPU time and wakeups read from
/proc, CPU pinning, a CPU-capped cgroup, and a junk flood with a real knock every second.

CPU is read from /proc/<pid>/task/*/schedstat (nanoseconds on a CPU, every thread): the
rusage tick (10 ms) is far too coarse for 2,000 packets of a few microseconds each. Only
the daemon's own time counts; the kernel's share of a packet (BPF filter, ring copy) runs
in softirq, mostly on the sender's CPU, for both daemons alike."""

import json
import os
import random
import time

from .common import GRANT_WINDOW, SPA_PORT, SRV_IP, BenchError, on_cleanup, say, stop
from .lab import JUNK_SENDER, read_line
from .packets import spa_packet

CGROUP_CPU = "/sys/fs/cgroup/cpu"      # cgroup v1 cpu controller (cfs quota)
DAEMON_CPU, SENDER_CPU = 0, 1          # pinning on a 2-CPU machine


def write_pool(path: str, payloads) -> str:
    """A junk pool for JUNK_SENDER: one hex-encoded payload per line."""
    with open(path, "w") as fh:
        fh.write("\n".join(p.hex() for p in payloads) + "\n")
    return path


def random_length_junk(pk, n: int, lo: int = 140, hi: int = 1400) -> list:
    """Base64 text of random lengths (cut from real packets, so the alphabet check passes):
    what fwknopd must examine in full, and what spa-lite's kernel filter drops by length."""
    text = b"".join(pk.invalid[:200])
    out = []
    rnd = random.Random(7)
    while len(out) < n:
        length = rnd.randint(lo, hi)
        start = rnd.randint(0, len(text) - length)
        out.append(text[start:start + length])
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` so far, in seconds (nanosecond resolution)."""
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as fh:
                total += int(fh.read().split()[0])
    except (OSError, ValueError, IndexError) as exc:
        raise BenchError("cannot read the CPU time of pid %d: %s" % (pid, exc))
    return total / 1e9


def context_switches(pid: int) -> int:
    """Voluntary context switches of the main thread: each time it went to sleep, so each
    wakeup (involuntary ones are preemptions of a running process, not wakeups)."""
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    raise BenchError("no voluntary_ctxt_switches for pid %d" % pid)


def pin(pid: int, cpu: int) -> bool:
    """Keep a process on one CPU (the daemon on one, the sender on the other), if there are
    two; False when it could not be done."""
    if (os.cpu_count() or 1) < 2:
        return False
    try:
        os.sched_setaffinity(pid, {cpu})
        return True
    except OSError:
        return False


class CpuCap:
    """A cgroup-v1 cpu group capped to ``percent`` of one CPU (cfs quota/period). The
    process is moved in from outside its namespace by pid (``ip netns exec`` remounts /sys,
    so the daemon itself could not see this hierarchy)."""

    PERIOD_US = 100000

    def __init__(self, name: str, percent: float) -> None:
        if not os.path.exists(os.path.join(CGROUP_CPU, "cpu.cfs_quota_us")):
            raise BenchError("no cgroup v1 cpu controller at %s" % CGROUP_CPU)
        self.path = os.path.join(CGROUP_CPU, name)
        os.makedirs(self.path, exist_ok=True)
        self._write("cpu.cfs_period_us", self.PERIOD_US)
        self._write("cpu.cfs_quota_us", int(self.PERIOD_US * percent / 100))
        self.percent = percent
        on_cleanup(self.close)

    def _write(self, name: str, value) -> None:
        with open(os.path.join(self.path, name), "w") as fh:
            fh.write("%s\n" % value)

    def add(self, pid: int) -> None:
        self._write("cgroup.procs", pid)

    def throttled_s(self) -> float:
        """Seconds the group was held back by its quota so far."""
        with open(os.path.join(self.path, "cpu.stat")) as fh:
            for line in fh:
                if line.startswith("throttled_time"):
                    return int(line.split()[1]) / 1e9
        return 0.0

    def close(self) -> None:
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as fh:
                left = [int(x) for x in fh.read().split()]
            with open(os.path.join(CGROUP_CPU, "cgroup.procs"), "w") as root:
                for pid in left:
                    root.write("%d\n" % pid)
            os.rmdir(self.path)
        except OSError:
            pass


def flood(ctx, lab, who: str, rate: float, seconds: float, pool: str, port: int,
          knock_every: float = 1.0, window: float = GRANT_WINDOW) -> dict:
    """A junk flood at ``rate`` for ``seconds`` with a real knock every ``knock_every`` s
    (each for its own closed port, from ``port`` on); the daemon is lab.daemon. Returns what
    the sender reached and each knock's latency (None: no TCP connect within ``window``)."""
    sender = lab.spawn_py(lab.cli, JUNK_SENDER, SRV_IP, str(SPA_PORT), str(rate), str(seconds),
                          pool)
    pin(sender.pid, SENDER_CPU)
    pin(lab.agent.pid, SENDER_CPU)
    out = {"knocks": 0, "granted": 0, "latencies": []}
    t0 = time.monotonic()
    k = 0
    while knock_every and 0.5 + k * knock_every < seconds - 0.5:
        slot = t0 + 0.5 + k * knock_every
        time.sleep(max(0.0, slot - time.monotonic()))
        lat = lab.knock(port, spa_packet(ctx.keys, "tcp/%d" % port), window)
        port += 1
        k += 1
        out["knocks"] += 1
        out["granted"] += lat is not None
        out["latencies"].append(None if lat is None else round(lat * 1000, 1))
    out.update(json.loads(read_line(sender, seconds + 20)))
    stop(sender)
    out["rate"] = out["sent"] / out["elapsed"] if out["elapsed"] else 0.0
    out["next_port"] = port
    if out["knocks"]:
        say("%s: %d/%d knocks granted at %.0f junk/s sent" % (who, out["granted"], out["knocks"],
                                                             out["rate"]))
    return out
