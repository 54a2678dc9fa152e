"""invalid_cpu_per_packet: the cost a flood of junk imposes (the number that matters most
on a router), measured from pcap files so only per-packet work counts."""

from ..common import fmt
from ..cpurun import cpu_result, per_packet_jobs, run_jobs

ORDER = 10
NAMES = ("invalid_cpu_per_packet",)


def run(ctx) -> list:
    jobs = per_packet_jobs(ctx, ctx.packets(), ctx.pcap_cfg(), "invalid")
    run_jobs(ctx, jobs, ctx.p["repeats"], "invalid_cpu_per_packet")
    return [cpu_result("invalid_cpu_per_packet", ctx, jobs,
                       "%d distinct packets whose HMAC fails, pcap-file + test mode, 1 stanza, "
                       "empty replay cache" % ctx.p["invalid_packets"])]


def target(r: dict):
    rt = r.get("ratio")
    return "ratio <= 1.0", None if rt is None else rt <= 1.0


def beside(r: dict) -> list:
    return cpu_beside(r)


def cpu_beside(r: dict) -> list:
    """The fastest-run figures beside a per-packet CPU result."""
    if not r.get("spa_lite_best"):
        return []
    return ["%s, fastest runs: spa-lite %s us, fwknopd %s us (ratio %s)" % (
        r["name"], fmt(r["spa_lite_best"]), fmt(r.get("fwknopd_best")), fmt(r.get("ratio_best")))]
