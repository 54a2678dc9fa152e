"""valid_cpu_per_packet: the cost of a real knock (HMAC, decrypt, decode, policy, log)."""

from ..cpurun import cpu_result, per_packet_jobs, run_jobs
from .invalid_cpu import cpu_beside

ORDER = 20
NAMES = ("valid_cpu_per_packet",)


def run(ctx) -> list:
    jobs = per_packet_jobs(ctx, ctx.packets(), ctx.pcap_cfg(), "valid")
    run_jobs(ctx, jobs, ctx.p["repeats"], "valid_cpu_per_packet")
    return [cpu_result("valid_cpu_per_packet", ctx, jobs,
                       "%d distinct valid packets (each granted in test mode), pcap-file + test "
                       "mode" % ctx.p["valid_packets"])]


def target(r: dict):
    return "(none)", None


beside = cpu_beside
