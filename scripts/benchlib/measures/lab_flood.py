"""grant_latency_ms (knock to TCP connect on an idle link) and flood_legit_granted
(real knocks during a junk flood), one fresh veth lab per daemon."""

import random
import tempfile
import time

from ..common import (GRANT_WINDOW, JUNK_POOL, KNOCK_PORT_BASE, LATENCY_LIMIT, PROBE_INTERVAL,
                      BenchError, Missing, fmt, make_result, median, say, spread, stop, tail)
from ..cpurun import fwknopd_counts, spa_lite_counts
from ..lab import Lab, start_fwknopd_live, start_spa_lite_live
from ..live import DAEMON_CPU, cpu_seconds, flood, pin, write_pool
from ..packets import spa_packet


ORDER = 50
NAMES = ("flood_legit_granted", "grant_latency_ms")


def lab_session(ctx, who: str, pool_file: str):
    """One daemon in a fresh lab: grant latencies on an idle link, then the flood."""
    p = ctx.p
    n_lat, flood_s = p["latency_repeats"], p["flood_seconds"]
    lab = Lab(ctx, "sl" if who == "spa-lite" else "fw", n_lat + flood_s + 4)
    d = tempfile.mkdtemp(prefix=who + "-", dir=ctx.tmp)
    out = {"latencies": []}
    try:
        log = (start_spa_lite_live if who == "spa-lite" else start_fwknopd_live)(ctx, lab, d)
        pin(lab.daemon.pid, DAEMON_CPU)
        port = KNOCK_PORT_BASE + 1
        if lab.knock(port + lab.ports - 1, None, 0.3) is not None:
            raise BenchError("%s lab: the hidden port is open before any knock" % who)
        for i in range(n_lat):
            time.sleep(0.15 + random.random() * 0.2)   # land anywhere in a polling cycle
            lat = lab.knock(port, spa_packet(ctx.keys, "tcp/%d" % port), LATENCY_LIMIT)
            port += 1
            if lat is None:
                raise BenchError("%s lab: no grant within %.0f s on an idle link; log ends: %s"
                                 % (who, LATENCY_LIMIT, tail(log, 300)))
            out["latencies"].append(lat * 1000)
        say("grant_latency_ms %s: %s" % (who, " ".join("%.1f" % x for x in out["latencies"])))
        idle = out["latencies"]
        c0, t0 = cpu_seconds(lab.daemon.pid), time.monotonic()
        out.update(flood(ctx, lab, who, ctx.junk_rate, flood_s, pool_file, port))
        out["cpu_share"] = round((cpu_seconds(lab.daemon.pid) - c0) / (time.monotonic() - t0), 3)
        out["flood_latencies"], out["latencies"] = out["latencies"], idle
        time.sleep(0.3)
        stop(lab.daemon)
        lab.daemon = None
        if who == "spa-lite":
            c = spa_lite_counts(log)
            out["junk_examined"] = c.get("junk", 0)
        else:
            out["junk_examined"] = fwknopd_counts(log)["hmac_fail"]
        say("flood %s: %d/%d knocks granted within %.0f s at %.0f junk packets/s sent, %d of "
            "%d junk packets examined" % (who, out["granted"], out["knocks"], GRANT_WINDOW,
                                          out["rate"], out["junk_examined"], out["sent"]))
    finally:
        lab.close()
    return out


def granted_median(o):
    """Median latency of the granted knocks (ms), None if none was granted."""
    lats = [x for x in o["flood_latencies"] if x is not None] if o else []
    return median(lats) if lats else None


def run(ctx) -> list:
    """flood_legit_granted and grant_latency_ms, one fresh lab per daemon."""
    miss = ctx.missing("ip", "nft", "fwknopd", "iptables")
    if not ctx.root or not ctx.tools["ip"] or not ctx.tools["nft"]:
        raise Missing("cannot build the spa-lite lab", miss)
    pool = write_pool(ctx.path("junk.txt"), ctx.packets().invalid[:JUNK_POOL])
    sl = lab_session(ctx, "spa-lite", pool)
    fw = None
    if ctx.tools["fwknopd"] and ctx.tools["iptables"]:
        fw = lab_session(ctx, "fwknopd", pool)
    frac = lambda o: o["granted"] / o["knocks"] if o and o["knocks"] else None  # noqa: E731
    flood = make_result(
        "flood_legit_granted", "fraction", frac(sl), frac(fw), knocks=sl["knocks"],
        junk_rate_target=ctx.junk_rate, junk_rate_reached_spa_lite=round(sl["rate"]),
        junk_rate_reached_fwknopd=round(fw["rate"]) if fw else None,
        junk_examined_spa_lite=sl["junk_examined"], junk_sent_spa_lite=sl["sent"],
        junk_examined_fwknopd=fw["junk_examined"] if fw else None,
        junk_sent_fwknopd=fw["sent"] if fw else None,
        knock_ms_spa_lite=sl["flood_latencies"],
        median_knock_ms_spa_lite=granted_median(sl), median_knock_ms_fwknopd=granted_median(fw),
        cpu_share_spa_lite=sl["cpu_share"], cpu_share_fwknopd=fw["cpu_share"] if fw else None,
        knock_ms_fwknopd=fw["flood_latencies"] if fw else None,
        note="%d s of junk (invalid-HMAC SPA packets) at a target %d/s over a veth pair; a "
             "knock every second, granted = TCP connect within %.0f s; fwknopd at its default "
             "capture settings" % (ctx.p["flood_seconds"], ctx.junk_rate, GRANT_WINDOW))
    lat_s = sl["latencies"]
    lat_f = fw["latencies"] if fw else []
    latency = make_result("grant_latency_ms", "ms", median(lat_s), median(lat_f),
                          repeats=len(lat_s), spa_lite_spread=spread(lat_s),
                          fwknopd_spread=spread(lat_f),
                          note="knock sent -> first TCP connect that succeeds (a fresh SYN every "
                               "%.0f ms), idle link, a new port per knock" % (PROBE_INTERVAL * 1e3))
    if fw is None:
        for r in (flood, latency):
            r["missing"] = miss
    return [latency, flood]


def target(r: dict):
    spa, rt = r.get("spa_lite"), r.get("ratio")
    if r["name"] == "flood_legit_granted":
        med = r.get("median_knock_ms_spa_lite")
        if spa is None or med is None:
            return "1.0, median <= 50 ms", None
        return "1.0, median <= 50 ms", spa >= 1.0 and med <= 50
    return "ratio <= 1.0", None if rt is None else rt <= 1.0


def beside(r: dict) -> list:
    if r["name"] != "flood_legit_granted" or r.get("spa_lite") is None:
        return []
    return ["flood (target %s/s): junk rate reached %s/s with spa-lite (%s of %s examined, "
            "median knock-to-grant %s ms, daemon CPU share %s), %s/s with fwknopd (%s of %s "
            "examined, median %s ms, CPU share %s)"
            % (r.get("junk_rate_target"), r.get("junk_rate_reached_spa_lite"),
               r.get("junk_examined_spa_lite"), r.get("junk_sent_spa_lite"),
               fmt(r.get("median_knock_ms_spa_lite")), fmt(r.get("cpu_share_spa_lite")),
               r.get("junk_rate_reached_fwknopd"), r.get("junk_examined_fwknopd"),
               r.get("junk_sent_fwknopd"), fmt(r.get("median_knock_ms_fwknopd")),
               fmt(r.get("cpu_share_fwknopd")))]
