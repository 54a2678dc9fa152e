"""stanza_scaling: junk-packet cost with 1,000 stanzas over the cost with one."""

from ..common import best_ratio, make_result, median, scaled
from .replay import us_beside
from ..cpurun import Job, per_packet_jobs, run_jobs
from ..packets import many_stanzas, write_private


ORDER = 40
NAMES = ("stanza_scaling",)


def run(ctx) -> list:
    """Invalid-packet cost with 1,000 stanzas (all SOURCE ANY, none with the packets' keys)
    over the cost with 1, measured back to back in every repetition."""
    pk, cfg = ctx.packets(), ctx.pcap_cfg()
    p = ctx.p
    n, st = p["stanza_packets"], p["stanzas"]
    access = write_private(ctx.path("access-%d.conf" % st), many_stanzas(st))
    big = pk.pcap(ctx, "stanza-%d" % n, pk.invalid[:n])
    small = pk.pcap(ctx, "invalid-1", pk.invalid[-1:])
    one = {j.who: j for j in per_packet_jobs(ctx, pk, cfg, "invalid")}   # the 1-stanza cost
    jobs = [one["spa-lite"],
            Job("stanzas-spa", "spa-lite",
                ctx.spa_lite_pcap(cfg["sl_conf"], access, big, n, cfg["sl_digest"]),
                ctx.spa_lite_pcap(cfg["sl_conf"], access, small, 1, cfg["sl_digest"]), n - 1,
                {"junk": n}, {"junk": 1})]
    if ctx.tools["fwknopd"]:
        def fresh():
            open(cfg["fw_digest"], "w").close()
        jobs += [one["fwknopd"],
                 Job("stanzas-fw", "fwknopd",
                     ctx.fwknopd_pcap(cfg["fw_conf"], access, big, n, cfg["fw_digest"]),
                     ctx.fwknopd_pcap(cfg["fw_conf"], access, small, 1, cfg["fw_digest"]),
                     n - 1, {"hmac_fail": n * st}, {"hmac_fail": st}, before=fresh)]
    run_jobs(ctx, jobs, p["repeats"], "stanza_scaling")
    out = {}
    for j in jobs[1::2]:
        base = one[j.who]
        value, rng = scaled(j.samples, base.samples)
        out[j.who] = {"scaling": value, "spread": rng, "best": best_ratio(j, base),
                      "us_per_packet": {"1": median(base.samples) * 1e6,
                                        str(st): median(j.samples) * 1e6}}
    sl, fw = out["spa-lite"], out.get("fwknopd", {})
    r = make_result("stanza_scaling", "x", sl["scaling"], fw.get("scaling"),
                    repeats=p["repeats"], spa_lite_spread=sl["spread"],
                    fwknopd_spread=fw.get("spread"), spa_lite_best=sl["best"],
                    fwknopd_best=fw.get("best"), spa_lite_us_per_packet=sl["us_per_packet"],
                    fwknopd_us_per_packet=fw.get("us_per_packet"),
                    note="%d stanzas (SOURCE ANY, other keys) vs 1; %d invalid packets with "
                         "%d stanzas, %d with 1; median of back-to-back pairs; fwknopd logs two "
                         "lines per stanza tried" % (st, n, st, p["invalid_packets"]))
    if not fw:
        r["missing"] = ctx.missing("fwknopd")
    return [r]


def target(r: dict):
    rt = r.get("ratio")
    return "<= fwknopd's", None if rt is None else rt <= 1.0


beside = us_beside
