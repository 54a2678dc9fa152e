"""Constants, errors, process and namespace hygiene, statistics and the result shape
shared by every measurement."""

import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# ------------------------------------------------------------------ counts, rates, targets
PROFILES = {
    # repeats: repetitions of every CPU measurement (median and min-max reported); inner: runs
    # per repetition, of which the fastest counts (see run_jobs for why)
    "full": dict(repeats=5, inner=3, invalid_packets=30000, valid_packets=3000,
                 cache_entries=100000, replay_packets_spa=50000, replay_packets_fwknopd=500,
                 stanzas=1000, stanza_packets=200, flood_seconds=20, latency_repeats=15,
                 client_runs=21, rss_repeats=3, live_rates=(2000, 20000, 50000), live_seconds=4,
                 live_repeats=2, capped_seconds=12, idle_seconds=60),
    "quick": dict(repeats=3, inner=2, invalid_packets=10000, valid_packets=1000,
                  cache_entries=100000, replay_packets_spa=20000, replay_packets_fwknopd=150,
                  stanzas=1000, stanza_packets=30, flood_seconds=6, latency_repeats=4,
                  client_runs=7, rss_repeats=1, live_rates=(20000,), live_seconds=1.0,
                  live_repeats=1, capped_seconds=3, idle_seconds=3),
}
JUNK_RATE = 50000          # packets/s of junk to the SPA port during the flood
JUNK_POOL = 2000           # distinct junk packets the flood cycles through
GRANT_WINDOW = 1.0         # a knock counts as granted if a TCP connect succeeds within this
LATENCY_LIMIT = 3.0        # give up measuring one knock's latency after this many seconds
PROBE_INTERVAL = 0.002     # a fresh SYN this often while waiting for the door (drops are silent)
RSS_SETTLE = 1.0           # seconds an idle daemon runs before VmHWM is read
WATCHDOG = {"full": 1800, "quick": 200}   # the whole run is bounded in time (seconds)

SPA_PORT = 62201
SRV_IP, CLI_IP = "10.213.200.1", "10.213.200.2"   # the lab and the pcap headers
KNOCK_PORT_BASE = 20000    # each knock asks for its own port, so every door starts closed
NS_PREFIX = "spabench"
FWKNOPD_PKG = {"fwknopd": "fwknop-server", "fwknop": "fwknop-client", "ip": "iproute2",
               "nft": "nftables", "iptables": "iptables"}


UNIT_CPU = "us/packet"


class BenchError(Exception):
    """A measurement could not be made or its evidence did not match (message says why)."""


class Missing(BenchError):
    """A tool (or root) that a result needs is not there; ``missing`` names each."""

    def __init__(self, what: str, missing: list) -> None:
        BenchError.__init__(self, "%s, missing: %s" % (what, "; ".join(missing)))
        self.missing = missing


class KilledFromOutside(BenchError):
    """A measured run died of a signal we did not send (on a shared machine someone's
    ``pkill -f 'spa_lite server'`` reaches every namespace): worth one retry."""


class Interrupted(BaseException):
    """SIGINT, SIGTERM or the watchdog: unwind through every finally, then clean up."""


# ------------------------------------------------------------------ process and namespace hygiene
_PROCS = []       # every Popen we started, so cleanup can end exactly those
_UNDO = []        # other things to undo at cleanup (cgroups), last made first
_NAMESPACES = []  # every namespace we created
_T0 = time.monotonic()


def say(text: str) -> None:
    """Progress on stderr, so stdout carries only the table."""
    sys.stderr.write("[%6.1fs] %s\n" % (time.monotonic() - _T0, text))
    sys.stderr.flush()


def start(argv, **kw):
    """Popen that remembers the process, so cleanup ends exactly what we started."""
    p = subprocess.Popen(argv, **kw)
    _PROCS.append(p)
    return p


def stop(p, grace: float = 5.0) -> None:
    """End one process we started: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if p.returncode is None and p.poll() is None:
        try:
            p.terminate()
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        except ProcessLookupError:
            pass
    if p in _PROCS:
        _PROCS.remove(p)


def make_ns(tag: str) -> str:
    """A fresh namespace named spabench-<our pid>-<tag> (parallel runs cannot collide)."""
    name = "%s-%d-%s" % (NS_PREFIX, os.getpid(), tag)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    _run_checked(["ip", "netns", "add", name])
    _NAMESPACES.append(name)
    _run_checked(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"])
    return name


def del_ns(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    if name in _NAMESPACES:
        _NAMESPACES.remove(name)


def cleanup() -> None:
    """Idempotent: our processes first (a namespace outlives its processes), then namespaces.
    A second Ctrl-C must not cut it short, so signals are ignored meanwhile."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    signal.alarm(0)
    for p in list(_PROCS):
        try:
            stop(p, 3)
        except Exception:
            pass
    for ns in list(_NAMESPACES):
        try:
            del_ns(ns)
        except Exception:
            pass
    while _UNDO:
        try:
            _UNDO.pop()()
        except Exception:
            pass


def on_cleanup(fn) -> None:
    """Run ``fn`` at cleanup (after our processes have ended), even when interrupted."""
    _UNDO.append(fn)


def _on_signal(signum, frame):
    raise Interrupted("signal %d" % signum)


def _run_checked(argv, timeout=30, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise BenchError("%s failed: %s" % (" ".join(argv), (r.stderr or r.stdout).strip()[:300]))
    return r


def child_env(home: str) -> dict:
    """spa-lite importable from this checkout whatever interpreter runs us; a private HOME so
    neither client reads or writes anyone's rc files."""
    env = dict(os.environ, HOME=home, LC_ALL="C")
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONDONTWRITEBYTECODE", None)   # else every start recompiles spa-lite
    return env


def tool(name: str):
    """Path of an external tool (sbin may be missing from a sudo PATH), or None."""
    if shutil.which(name):
        return shutil.which(name)
    return "/usr/sbin/" + name if os.path.exists("/usr/sbin/" + name) else None


# ------------------------------------------------------------------ statistics and results
def median(values):
    return statistics.median(values) if values else None


def spread(values):
    return [min(values), max(values)] if values else None


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def scaled(loaded, base):
    """(median, [min, max]) of the repetition-by-repetition ratios loaded/base.

    On a shared VM the same CPU-bound run can take 1.5x longer for seconds at a time, so a
    ratio is only trustworthy between two runs made back to back: each repetition runs the
    pair adjacently (run_jobs alternates the order) and the median pair wins."""
    per_rep = [a / b for a, b in zip(loaded, base)]
    return median(per_rep), spread(per_rep)


def best_ratio(loaded, base):
    """Job.best() of two jobs divided (see there); reported beside the median."""
    return ratio(loaded.best(), base.best())


def make_result(name, unit, spa, ref, ref_key="fwknopd", **extra) -> dict:
    """The JSON shape the issue asks for, plus whatever evidence fits (spreads, counts)."""
    r = {"name": name, "spa_lite": spa, ref_key: ref, "reference": ref_key, "unit": unit,
         "ratio": ratio(spa, ref)}
    r.update(extra)
    return r


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    a = abs(v)
    if a >= 1000:
        return "%.0f" % v
    if a >= 100:
        return "%.1f" % v
    if a >= 10:
        return "%.2f" % v
    if a >= 0.01:
        return "%.3f" % v
    return "%.2g" % v


def tail(path: str, n: int = 400) -> str:
    """The end of a log, for error messages (the temp dir is gone once the run ends)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - n))
            return fh.read().decode(errors="replace").strip()
    except OSError:
        return "(no log)"


def started_at() -> float:
    """When the harness started (monotonic), for the run's total time."""
    return _T0
