"""CPU time of one daemon run over a pcap file, the verdict counts its log must show,
and the interleaved repetitions (Job, run_jobs) every pcap-file result uses."""

import os
import re
import subprocess
import time

from .common import (BenchError, KilledFromOutside, UNIT_CPU, _PROCS, make_result, median, ratio,
                     say, spread, start, stop, tail)


def run_cpu(argv, log_path: str, timeout: float, env: dict):
    """(CPU seconds, wall seconds) of one child, from os.wait4's rusage of exactly that
    child (its reaped descendants included), with the log kept for the evidence check."""
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        p = start(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                stop(p, 1)
                raise BenchError("%s ran over %.0f s (log %s)" % (argv[0], timeout, log_path))
            time.sleep(0.01)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    _PROCS.remove(p)
    if p.returncode < 0:
        raise KilledFromOutside("%s was killed by signal %d, which we did not send"
                                % (" ".join(argv[-12:]), -p.returncode))
    if p.returncode != 0:
        raise BenchError("%s exited %d: %s" % (" ".join(argv[-12:]), p.returncode, tail(log_path)))
    return ru.ru_utime + ru.ru_stime, wall



def spa_lite_counts(path: str) -> dict:
    """Verdict counts from spa-lite's last line: 'stopped after ..: N packets examined (junk N)'."""
    with open(path, errors="replace") as fh:
        text = fh.read()
    m = re.search(r"(\d+) packets examined \(([^)]*)\), (\d+) internal errors", text)
    if not m:
        raise BenchError("spa-lite log has no summary line: %s" % text[-300:])
    counts = {"examined": int(m.group(1)), "errors": int(m.group(3))}
    for part in m.group(2).split(","):
        kv = part.split()
        if len(kv) == 2 and kv[1].isdigit():
            counts[kv[0]] = int(kv[1])
    return counts


def fwknopd_counts(path: str) -> dict:
    """fwknopd logs every packet (per stanza for HMAC failures), so its log is the evidence."""
    c = {"hmac_fail": 0, "grant": 0, "replay": 0, "limit": 0, "added": 0}
    with open(path, errors="replace") as fh:
        for line in fh:
            if "HMAC_COMPAREFAIL" in line:
                c["hmac_fail"] += 1
            elif "--test mode enabled, skipping firewall" in line:
                c["grant"] += 1
            elif line.startswith("Replay detected"):
                c["replay"] += 1
            elif "Added access rule" in line:
                c["added"] += 1
            elif "Packet count limit" in line:
                c["limit"] += 1
    return c


def check_counts(who: str, got: dict, want: dict, log_path: str) -> None:
    """A number is reported only for the verdicts it claims to measure."""
    if who == "spa-lite":
        want = dict(want, errors=0)
    bad = {k: (got.get(k, 0), v) for k, v in want.items() if got.get(k, 0) != v}
    if bad:
        raise BenchError("%s did not do what the benchmark assumes: %s (got, expected); log "
                         "ends: %s" % (who, ", ".join("%s %s" % kv for kv in sorted(bad.items())),
                                       tail(log_path, 300)))


class Job:
    """A daemon over a big and a 1-packet pcap, same config: the difference is pure per-packet
    work. ``want_big``/``want_small`` are the verdict counts its log must show."""

    def __init__(self, key, who, argv_big, argv_small, extra_packets, want_big, want_small,
                 before=None, timeout=600) -> None:
        self.key, self.who = key, who
        self.argv_big, self.argv_small = argv_big, argv_small
        self.extra = extra_packets
        self.want_big, self.want_small = want_big, want_small
        self.before = before            # called before each run (fresh digest file copies)
        self.timeout = timeout
        self.samples = []               # per-packet CPU seconds, one per repetition
        self.cpu = {"big": [], "small": []}   # the raw CPU seconds behind them

    def best(self):
        """Per-packet CPU from the fastest big and the fastest small run: contention only
        ever adds time, so this is the least disturbed estimate (reported beside medians)."""
        if not self.samples:
            return None
        return (min(self.cpu["big"]) - min(self.cpu["small"])) / self.extra


def measured_run(ctx, job, size: str, argv, want) -> float:
    """CPU seconds of one run whose log shows the expected verdicts (one retry if someone
    else's signal killed it)."""
    if job.before:
        job.before()
    log = os.path.join(ctx.tmp, "%s-%s.log" % (job.key, size))
    try:
        cpu, _ = run_cpu(argv, log, job.timeout, ctx.env)
    except KilledFromOutside as exc:
        say("%s; running it again" % exc)
        if job.before:
            job.before()
        cpu, _ = run_cpu(argv, log, job.timeout, ctx.env)
    check_counts(job.who, ctx.counts_of[job.who](log), want, log)
    os.unlink(log)
    return cpu


def run_jobs(ctx, jobs, repeats: int, title: str) -> None:
    """Interleave the jobs repetition by repetition, in reverse order every other time (ABBA),
    so slow drift hits every variant alike. Each sample is (cpu_big - cpu_small) / extra
    packets, each cpu the fastest of ``inner`` back-to-back runs (as timeit does): on a shared
    VM the very same run is either undisturbed or up to ~1.8x slower for seconds at a time,
    and a median of single runs can land on either mode."""
    inner = ctx.p["inner"]
    for rep in range(repeats):
        line = []
        for job in (jobs if rep % 2 == 0 else jobs[::-1]):
            cpu = {}
            for size, argv, want in (("small", job.argv_small, job.want_small),
                                     ("big", job.argv_big, job.want_big)):
                runs = []
                for _ in range(inner):
                    runs.append(measured_run(ctx, job, size, argv, want))
                job.cpu[size] += runs
                cpu[size] = min(runs)
            job.samples.append((cpu["big"] - cpu["small"]) / job.extra)
            line.append("%s %.1f us" % (job.key, job.samples[-1] * 1e6))
        say("%s rep %d/%d: %s" % (title, rep + 1, repeats, ", ".join(sorted(line))))


def per_packet_jobs(ctx, pk, cfg, kind: str):
    """Jobs for the invalid or valid packet result; both daemons in pcap-file + test mode."""
    n = ctx.p["invalid_packets"] if kind == "invalid" else ctx.p["valid_packets"]
    pkts = pk.invalid if kind == "invalid" else pk.valid
    big = pk.pcap(ctx, "%s-%d" % (kind, n), pkts[:n])
    small = pk.pcap(ctx, "%s-1" % kind, pkts[-1:])
    sl_want = (lambda m: {"junk": m}) if kind == "invalid" else (lambda m: {"grant": m})
    fw_want = (lambda m: {"hmac_fail": m, "limit": 1}) if kind == "invalid" else \
        (lambda m: {"grant": m, "limit": 1})
    jobs = [Job(kind + "-spa", "spa-lite",
                ctx.spa_lite_pcap(cfg["sl_conf"], cfg["access"], big, n, cfg["sl_digest"]),
                ctx.spa_lite_pcap(cfg["sl_conf"], cfg["access"], small, 1, cfg["sl_digest"]),
                n - 1,
                sl_want(n), sl_want(1))]
    if ctx.tools["fwknopd"]:
        def fresh():
            open(cfg["fw_digest"], "w").close()
        jobs.append(Job(kind + "-fw", "fwknopd",
                        ctx.fwknopd_pcap(cfg["fw_conf"], cfg["access"], big, n, cfg["fw_digest"]),
                        ctx.fwknopd_pcap(cfg["fw_conf"], cfg["access"], small, 1, cfg["fw_digest"]),
                        n - 1, fw_want(n), fw_want(1), before=fresh))
    return jobs


def cpu_result(name, ctx, jobs, note):
    """A per-packet CPU result (microseconds) from the jobs' samples."""
    by = {j.who: j for j in jobs}
    spa = [s * 1e6 for s in by["spa-lite"].samples]
    fw = [s * 1e6 for s in by["fwknopd"].samples] if "fwknopd" in by else []
    best = {w: j.best() * 1e6 for w, j in by.items()}
    r = make_result(name, UNIT_CPU, median(spa), median(fw), repeats=len(spa),
                    spa_lite_spread=spread(spa), fwknopd_spread=spread(fw),
                    spa_lite_best=best["spa-lite"], fwknopd_best=best.get("fwknopd"),
                    ratio_best=ratio(best["spa-lite"], best.get("fwknopd")), note=note)
    if not fw:
        r["missing"] = ctx.missing("fwknopd")
    return r
