"""replay_cache_slowdown: junk-packet cost with a full replay cache over an empty one."""

import shutil

from ..common import best_ratio, fmt, make_result, median, scaled
from ..cpurun import Job, run_jobs
from ..packets import access_text, fwknopd_cache, spa_lite_cache, write_private


ORDER = 30
NAMES = ("replay_cache_slowdown",)


def run(ctx) -> list:
    """Invalid-packet cost with a 100,000-entry replay cache over the cost with 1 entry.

    spa-lite ignores DIGEST_FILE in test mode (it never loads it), so its runs here are not in
    test mode: every stanza has CMD_CYCLE_OPEN, for which spa-lite picks no firewall backend,
    and no packet authenticates, so nothing is run or written. fwknopd loads its cache in test
    mode. The last packet of every file is in both caches: its replay verdict proves the
    cache was loaded with the entries alive. The full run also measures spa-lite reading a
    cache in fwknopd's digest.cache format (a second, raw-payload digest per packet)."""
    pk, cfg = ctx.packets(), ctx.pcap_cfg()
    p = ctx.p
    entries = p["cache_entries"]
    access_cc = write_private(ctx.path("access-cycle.conf"), access_text(
        ctx.keys, "CMD_CYCLE_OPEN /bin/true\nCMD_CYCLE_CLOSE NONE\n"))
    small = pk.pcap(ctx, "replay-1", [pk.check])
    caches = {}
    for size in (1, entries):
        caches[("sl", size)] = ctx.path("sl-cache-%d" % size)
        spa_lite_cache(caches[("sl", size)], size, pk.check)
        caches[("fw", size)] = ctx.path("fw-cache-%d" % size)
        fwknopd_cache(caches[("fw", size)], size, pk.check)

    def copier(src, dst):
        return lambda: shutil.copyfile(src, dst)

    jobs = []
    variants = [("sl", "spa-lite", "sl")]
    if ctx.profile_name == "full":
        variants.append(("slfw", "spa-lite", "fw"))
    if ctx.tools["fwknopd"]:
        variants.append(("fw", "fwknopd", "fw"))
    for key, who, fmt_ in variants:
        for size in (1, entries):
            n = p["replay_packets_fwknopd"] if (who == "fwknopd" and size > 1) else \
                p["replay_packets_spa"]
            # spa-lite never records a packet that fails the HMAC, so cycling the pool of
            # distinct packets is the same work; the big count outweighs the cache load.
            body = [pk.invalid[i % (len(pk.invalid) - 1)] for i in range(n)]
            big = pk.pcap(ctx, "replay-%d" % n, body + [pk.check])
            if who == "spa-lite":
                dig = cfg["sl_digest"]
                argv_b = ctx.spa_lite_pcap(cfg["sl_conf"], access_cc, big, n + 1, dig, test=False)
                argv_s = ctx.spa_lite_pcap(cfg["sl_conf"], access_cc, small, 1, dig, test=False)
                want_b, want_s = {"junk": n, "replay": 1}, {"replay": 1}
            else:
                dig = cfg["fw_digest"]
                argv_b = ctx.fwknopd_pcap(cfg["fw_conf"], cfg["access"], big, n + 1, dig)
                argv_s = ctx.fwknopd_pcap(cfg["fw_conf"], cfg["access"], small, 1, dig)
                want_b, want_s = {"hmac_fail": n, "replay": 1}, {"replay": 1}
            jobs.append(Job("%s-%d" % (key, size), who, argv_b, argv_s, n, want_b, want_s,
                            before=copier(caches[(fmt_, size)], dig)))
    run_jobs(ctx, jobs, p["repeats"], "replay_cache_slowdown")
    by_key = {j.key: j for j in jobs}

    def slowdown(key):
        if "%s-1" % key not in by_key:
            return {}
        base, full = by_key["%s-1" % key], by_key["%s-%d" % (key, entries)]
        value, rng = scaled(full.samples, base.samples)
        return {"slowdown": value, "spread": rng, "best": best_ratio(full, base),
                "us_per_packet": {"1": median(base.samples) * 1e6,
                                  str(entries): median(full.samples) * 1e6}}

    sl, fw, slfw = slowdown("sl"), slowdown("fw"), slowdown("slfw")
    r = make_result("replay_cache_slowdown", "x", sl["slowdown"], fw.get("slowdown"),
                    repeats=p["repeats"], spa_lite_spread=sl["spread"],
                    fwknopd_spread=fw.get("spread"), spa_lite_best=sl["best"],
                    fwknopd_best=fw.get("best"), spa_lite_us_per_packet=sl["us_per_packet"],
                    fwknopd_us_per_packet=fw.get("us_per_packet"),
                    spa_lite_fwknopd_format=slfw or None,
                    note="%d cached digests vs 1; invalid packets (spa-lite %d, fwknopd %d per "
                         "run with the big cache); median of back-to-back pairs; spa-lite not "
                         "in test mode (it ignores the digest file with -t), CMD_CYCLE stanza "
                         "so no firewall is touched; *_best: ratio of the fastest runs"
                         % (entries, p["replay_packets_spa"], p["replay_packets_fwknopd"]))
    if not fw:
        r["missing"] = ctx.missing("fwknopd")
    return [r]


def target(r: dict):
    spa = r.get("spa_lite")
    return "spa-lite <= 1.2", None if spa is None else spa <= 1.2


def us_beside(r: dict) -> list:
    """us/packet at both sizes, fastest-run ratios (replay_cache_slowdown, stanza_scaling)."""
    if not r.get("spa_lite_us_per_packet"):
        return []
    a, b = r["spa_lite_us_per_packet"], r.get("fwknopd_us_per_packet") or {}
    keys = list(a)
    line = "%s us/packet (%s -> %s): spa-lite %s -> %s, fwknopd %s -> %s; fastest runs: " \
           "spa-lite %s x, fwknopd %s x" % (
               r["name"], keys[0], keys[1], fmt(a[keys[0]]), fmt(a[keys[1]]), fmt(b.get(keys[0])),
               fmt(b.get(keys[1])), fmt(r.get("spa_lite_best")), fmt(r.get("fwknopd_best")))
    f = r.get("spa_lite_fwknopd_format")
    if f:
        line += "; spa-lite reading fwknopd's cache format: %s x [%s-%s]" % (
            fmt(f["slowdown"]), fmt(f["spread"][0]), fmt(f["spread"][1]))
    return [line]


beside = us_beside
