"""live_cpu_per_junk_packet: the daemon's CPU per junk packet on the veth lab, live capture
at default settings, side by side with fwknopd, at several rates and for two kinds of junk:

- "random": base64 text of random lengths 140..1400 (what a scan or a dumb flood sends;
  fwknopd examines it all, spa-lite's kernel filter drops it by length);
- "valid": invalid-HMAC SPA packets (lengths and text a real client produces), which
  every daemon must take to user space and HMAC.

Per step: a fresh daemon pinned to one CPU, the sender on the other, CPU time of the
daemon over the flood (schedstat), packets sent, and packets the daemon examined (its log).
spa-lite's figure is CPU per packet offered to its capture (its kernel filter examines each
one for it); fwknopd's is CPU per packet it examined, as it drops what it cannot keep up
with (how many is reported)."""

import tempfile
import time

from ..common import KilledFromOutside, Missing, fmt, make_result, median, say, stop
from ..cpurun import spa_lite_counts
from ..lab import Lab, start_fwknopd_live, start_spa_lite_live
from ..live import DAEMON_CPU, cpu_seconds, flood, pin, random_length_junk, write_pool

ORDER = 52
NAMES = ("live_cpu_per_junk_packet",)
SETTLE = 0.4            # seconds between a daemon's start line and the flood
DRAIN = 0.4             # seconds after the flood before the CPU is read
KINDS = ("random", "valid")


def _examined(who: str, log: str) -> int:
    """Packets the daemon looked at in user space, from its log."""
    with open(log, errors="replace") as fh:
        text = fh.read()
    if who == "fwknopd":
        return text.count("received with access source match")
    return spa_lite_counts(log)["examined"]


def finished(log: str) -> bool:
    """Whether spa-lite's log ends with its summary line (it stopped by our SIGTERM)."""
    with open(log, errors="replace") as fh:
        return "packets examined" in fh.read()


def _step(ctx, lab, who, rate, seconds, pool) -> dict:
    d = tempfile.mkdtemp(prefix="%s-%d-" % (who, rate), dir=ctx.tmp)
    log = (start_spa_lite_live if who == "spa-lite" else start_fwknopd_live)(ctx, lab, d)
    try:
        pid = lab.daemon.pid
        pin(pid, DAEMON_CPU)
        time.sleep(SETTLE)
        c0 = cpu_seconds(pid)
        f = flood(ctx, lab, who, rate, seconds, pool, 0, knock_every=0)
        time.sleep(DRAIN)
        cpu = cpu_seconds(pid) - c0
        if lab.daemon.poll() is not None:
            raise KilledFromOutside("%s exited %s during the step, not by our hand"
                                    % (who, lab.daemon.returncode))
    finally:
        stop(lab.daemon)
        lab.daemon = None
    if who == "spa-lite" and not finished(log):
        raise KilledFromOutside("spa-lite wrote no summary line (killed from outside?)")
    n = _examined(who, log)
    return {"sent": f["sent"], "rate": round(f["rate"]), "cpu_s": round(cpu, 4), "examined": n,
            "us_per_sent": cpu / f["sent"] * 1e6 if f["sent"] else None,
            "us_per_examined": cpu / n * 1e6 if n else None,
            "not_examined": f["sent"] - n}


def run(ctx) -> list:
    miss = ctx.missing("ip", "nft", "fwknopd", "iptables")
    if not ctx.root or not ctx.tools["ip"] or not ctx.tools["nft"]:
        raise Missing("cannot build the lab", miss)
    p = ctx.p
    pk = ctx.packets()
    pools = {"valid": write_pool(ctx.path("junk-valid.txt"), pk.invalid[:2000]),
             "random": write_pool(ctx.path("junk-random.txt"), random_length_junk(pk, 2000))}
    whos = ["spa-lite"] + (["fwknopd"] if ctx.tools["fwknopd"] and ctx.tools["iptables"] else [])
    labs = {}
    steps = {}     # (who, kind, rate) -> [step, ...]
    try:
        for who in whos:
            labs[who] = Lab(ctx, "cpu-" + ("sl" if who == "spa-lite" else "fw"), 1)
        for rep in range(p["live_repeats"]):
            for kind in KINDS:
                for rate in p["live_rates"]:
                    for who in (whos if rep % 2 == 0 else whos[::-1]):
                        try:
                            s = _step(ctx, labs[who], who, rate, p["live_seconds"], pools[kind])
                        except KilledFromOutside as exc:   # someone's pkill: once more
                            say("%s; running the step again" % exc)
                            s = _step(ctx, labs[who], who, rate, p["live_seconds"], pools[kind])
                        steps.setdefault((who, kind, rate), []).append(s)
                        say("live_cpu %s %s junk at %d/s (reached %d/s): %.2f us per packet "
                            "sent, %s examined, cpu %.3f s" % (
                                who, kind, rate, s["rate"], s["us_per_sent"] or 0,
                                s["examined"], s["cpu_s"]))
    finally:
        for lab in labs.values():
            lab.close()
    table = []
    for kind in KINDS:
        for rate in p["live_rates"]:
            row = {"kind": kind, "rate": rate}
            for who in whos:
                runs = steps[(who, kind, rate)]
                key = "spa_lite" if who == "spa-lite" else "fwknopd"
                row[key + "_rate_reached"] = median([s["rate"] for s in runs])
                row[key + "_us_per_sent"] = median([s["us_per_sent"] for s in runs])
                per_ex = [s["us_per_examined"] for s in runs if s["us_per_examined"] is not None]
                row[key + "_us_per_examined"] = median(per_ex) if per_ex else None
                row[key + "_examined"] = median([s["examined"] for s in runs])
                row[key + "_sent"] = median([s["sent"] for s in runs])
            table.append(row)
    head = [r for r in table if r["kind"] == "valid"][-1]
    pcap = ctx.results.get("invalid_cpu_per_packet", {}).get("spa_lite")
    r = make_result("live_cpu_per_junk_packet", "us/packet", head["spa_lite_us_per_sent"],
                    head.get("fwknopd_us_per_examined"), steps=table, pcap_us_spa_lite=pcap,
                    repeats=p["live_repeats"], seconds_per_step=p["live_seconds"],
                    note="headline: valid-length junk at %d/s; spa-lite: daemon CPU per packet "
                         "sent to it (its kernel filter looks at each), fwknopd: per packet it "
                         "examined (it drops the rest); every step in 'steps'"
                         % head["rate"])
    if len(whos) < 2:
        r["missing"] = miss
    return [r]


def _checks(r: dict):
    """(spa-lite <= fwknopd at every step, spa-lite within 1.5x of its pcap figure)."""
    le, within = True, True
    for row in r.get("steps") or []:
        spa, fw = row.get("spa_lite_us_per_sent"), row.get("fwknopd_us_per_examined")
        if spa is None or fw is None:
            return None, None
        le = le and spa <= fw
        pcap = r.get("pcap_us_spa_lite")
        if pcap is not None and row["kind"] == "valid":
            within = within and spa <= 1.5 * pcap
        elif pcap is None:
            within = None
    return le, within


def target(r: dict):
    le, within = _checks(r)
    if le is None:
        return "<= fwknopd, <= 1.5x pcap", None
    return "<= fwknopd, <= 1.5x pcap", le and (within is None or within)


def beside(r: dict) -> list:
    out = []
    for row in r.get("steps") or []:
        out.append("live %s junk at %s/s: spa-lite %s us/packet (reached %s/s; %s examined in "
                   "Python, %s us each), fwknopd %s us per examined packet (reached %s/s; "
                   "examined %s of %s)" % (
                       row["kind"], row["rate"], fmt(row.get("spa_lite_us_per_sent")),
                       fmt(row.get("spa_lite_rate_reached")), fmt(row.get("spa_lite_examined")),
                       fmt(row.get("spa_lite_us_per_examined")),
                       fmt(row.get("fwknopd_us_per_examined")),
                       fmt(row.get("fwknopd_rate_reached")), fmt(row.get("fwknopd_examined")),
                       fmt(row.get("fwknopd_sent"))))
    le, within = _checks(r)
    if r.get("pcap_us_spa_lite") is not None:
        out.append("live_cpu_per_junk_packet: spa-lite pcap-file figure %s us; valid-length junk "
                   "live within 1.5x of it: %s; <= fwknopd at every step: %s"
                   % (fmt(r["pcap_us_spa_lite"]), fmt(within), fmt(le)))
    return out

