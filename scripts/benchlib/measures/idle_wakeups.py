"""idle_wakeups_per_minute: what an idle daemon costs a router that mostly sleeps. Both
daemons run side by side (each in its own lab, capture on its veth, firewall set up, no
traffic, no grants); every wakeup follows a voluntary context switch, read from
/proc/<pid>/status over the window and scaled to a minute. Target for spa-lite: at most 2.
spa-lite runs as deployed (nftables backend with PROTECT_PORTS, so its firewall watch is
measured too); fwknopd runs its iptables backend under our own DROP rule."""

import tempfile
import time

from ..common import Missing, fmt, make_result, say, stop
from ..lab import Lab, start_fwknopd_live, start_spa_lite_live
from ..live import context_switches

ORDER = 56
NAMES = ("idle_wakeups_per_minute",)
SETTLE = 2.0            # seconds after the start lines: start-up work is not idle


def run(ctx) -> list:
    miss = ctx.missing("ip", "nft", "fwknopd", "iptables")
    if not ctx.root or not ctx.tools["ip"] or not ctx.tools["nft"]:
        raise Missing("cannot build the lab", miss)
    whos = ["spa-lite"] + (["fwknopd"] if ctx.tools["fwknopd"] and ctx.tools["iptables"] else [])
    labs = {}
    try:
        for who in whos:
            lab = labs[who] = Lab(ctx, "idle-" + ("sl" if who == "spa-lite" else "fw"), 1)
            d = tempfile.mkdtemp(prefix="idle-" + who, dir=ctx.tmp)
            (start_spa_lite_live if who == "spa-lite" else start_fwknopd_live)(ctx, lab, d)
        time.sleep(SETTLE)
        seconds = ctx.p["idle_seconds"]
        before = {w: context_switches(lab.daemon.pid) for w, lab in labs.items()}
        t0 = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        per_min = {w: (context_switches(lab.daemon.pid) - before[w]) * 60.0 / elapsed
                   for w, lab in labs.items()}
    finally:
        for lab in labs.values():
            if lab.daemon is not None:
                stop(lab.daemon)
                lab.daemon = None
            lab.close()
    say("idle_wakeups_per_minute: %s" % ", ".join("%s %.1f" % kv for kv in per_min.items()))
    r = make_result("idle_wakeups_per_minute", "1/min", per_min["spa-lite"],
                    per_min.get("fwknopd"), seconds=round(elapsed, 1),
                    note="context switches of the idle daemon over %.0f s (capture on a veth, "
                         "firewall set up: spa-lite nftables with PROTECT_PORTS and its watch, "
                         "fwknopd iptables; no traffic, no grants), scaled to a minute"
                         % elapsed)
    if len(whos) < 2:
        r["missing"] = miss
    return [r]


def target(r: dict):
    spa = r.get("spa_lite")
    return "spa-lite <= 2", None if spa is None else spa <= 2


def beside(r: dict) -> list:
    if r.get("spa_lite") is None:
        return []
    return ["idle over %s s: spa-lite %s wakeups/min, fwknopd %s wakeups/min"
            % (r.get("seconds"), fmt(r["spa_lite"]), fmt(r.get("fwknopd")))]
