"""capped_flood_legit_granted: a router's CPU, roughly. Each daemon runs in a cgroup capped
to 20% of one CPU while 20,000 junk packets/s of valid SPA length (invalid-HMAC packets,
which no kernel filter can tell from knocks) arrive, and a real knock comes every second.
Granted = a TCP connect to the knocked port within CAPPED_WINDOW; the target is every knock
granted with a median knock-to-grant of at most 1 s, for spa-lite; fwknopd is measured
under the same cap beside it."""

import os
import tempfile
import time

from ..common import KNOCK_PORT_BASE, BenchError, Missing, fmt, make_result, median, say, stop
from ..lab import Lab, start_fwknopd_live, start_spa_lite_live
from ..live import DAEMON_CPU, CpuCap, cpu_seconds, flood, pin, write_pool

ORDER = 54
NAMES = ("capped_flood_legit_granted",)
CAP_PERCENT = 20
CAPPED_RATE = 20000
CAPPED_WINDOW = 3.0     # seconds a knock may take before it counts as not granted


def _session(ctx, who: str, pool: str) -> dict:
    seconds = ctx.p["capped_seconds"]
    lab = Lab(ctx, "cap-" + ("sl" if who == "spa-lite" else "fw"), seconds + 2)
    cap = None
    try:
        d = tempfile.mkdtemp(prefix="capped-" + who, dir=ctx.tmp)
        (start_spa_lite_live if who == "spa-lite" else start_fwknopd_live)(ctx, lab, d)
        pid = lab.daemon.pid
        pin(pid, DAEMON_CPU)
        cap = CpuCap("spabench-%d-%s" % (os.getpid(), who.replace("-", "")),
                     CAP_PERCENT)
        cap.add(pid)
        time.sleep(0.3)
        c0, t0, th0 = cpu_seconds(pid), time.monotonic(), cap.throttled_s()
        f = flood(ctx, lab, who, CAPPED_RATE, seconds, pool, KNOCK_PORT_BASE + 1,
                  window=CAPPED_WINDOW)
        f["cpu_share"] = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
        f["throttled_s"] = cap.throttled_s() - th0
        say("capped %s: %d/%d granted, knock ms %s, CPU share %.2f, throttled %.1f s"
            % (who, f["granted"], f["knocks"], f["latencies"], f["cpu_share"],
               f["throttled_s"]))
        return f
    finally:
        if lab.daemon is not None:
            stop(lab.daemon)
            lab.daemon = None
        lab.close()
        if cap is not None:
            cap.close()


def run(ctx) -> list:
    miss = ctx.missing("ip", "nft", "fwknopd", "iptables")
    if not ctx.root or not ctx.tools["ip"] or not ctx.tools["nft"]:
        raise Missing("cannot build the lab", miss)
    pool = write_pool(ctx.path("junk-capped.txt"), ctx.packets().invalid[:2000])
    out = {"spa-lite": _session(ctx, "spa-lite", pool)}
    if ctx.tools["fwknopd"] and ctx.tools["iptables"]:
        out["fwknopd"] = _session(ctx, "fwknopd", pool)
    if not out["spa-lite"]["knocks"]:
        raise BenchError("no knock was sent (capped_seconds too short)")

    def frac(o):
        return o["granted"] / o["knocks"] if o and o["knocks"] else None

    def med(o):
        lats = [x for x in o["latencies"] if x is not None] if o else []
        return median(lats) if lats else None
    sl, fw = out["spa-lite"], out.get("fwknopd")
    r = make_result("capped_flood_legit_granted", "fraction", frac(sl), frac(fw),
                    knocks=sl["knocks"], cap_percent=CAP_PERCENT, junk_rate_target=CAPPED_RATE,
                    window_s=CAPPED_WINDOW,
                    median_knock_ms_spa_lite=med(sl), median_knock_ms_fwknopd=med(fw),
                    knock_ms_spa_lite=sl["latencies"], knock_ms_fwknopd=fw and fw["latencies"],
                    junk_rate_reached_spa_lite=round(sl["rate"]),
                    junk_rate_reached_fwknopd=fw and round(fw["rate"]),
                    cpu_share_spa_lite=round(sl["cpu_share"], 3),
                    cpu_share_fwknopd=fw and round(fw["cpu_share"], 3),
                    note="daemon in a cgroup-v1 cpu group capped to %d%% of one CPU, %d junk/s "
                         "of valid SPA length, a knock every second, granted = TCP connect "
                         "within %.0f s" % (CAP_PERCENT, CAPPED_RATE, CAPPED_WINDOW))
    if fw is None:
        r["missing"] = miss
    return [r]


def target(r: dict):
    spa, med = r.get("spa_lite"), r.get("median_knock_ms_spa_lite")
    if spa is None or med is None:
        return "1.0, median <= 1 s", None
    return "1.0, median <= 1 s", spa >= 1.0 and med <= 1000


def beside(r: dict) -> list:
    if r.get("spa_lite") is None:
        return []
    return ["capped to %s%% of a CPU at %s junk/s: spa-lite median knock %s ms, CPU share %s; "
            "fwknopd median knock %s ms, CPU share %s" % (
                r.get("cap_percent"), r.get("junk_rate_target"),
                fmt(r.get("median_knock_ms_spa_lite")), fmt(r.get("cpu_share_spa_lite")),
                fmt(r.get("median_knock_ms_fwknopd")), fmt(r.get("cpu_share_fwknopd")))]
