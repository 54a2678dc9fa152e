"""client_send_vs_interpreter: start-up and one packet, against a bare interpreter."""

import subprocess
import sys
import time

from ..common import BenchError, CLI_IP, SRV_IP, fmt, make_result, median, ratio, say, spread


ORDER = 60
NAMES = ("client_send_vs_interpreter",)


def wall(argv, env, expect_out: bool) -> float:
    """Wall seconds of one process; a client that printed no packet fails the result."""
    t = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, env=env, timeout=30, stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t
    if r.returncode != 0 or (expect_out and len(r.stdout.strip()) < 100):
        raise BenchError("%s failed (exit %d): %s" % (argv[0], r.returncode,
                                                      (r.stderr or r.stdout)[-300:]))
    return dt


def run(ctx) -> list:
    """Median wall time of building one packet with `spa-lite send -T` (keys on the command
    line) against `python -c pass`, fwknop -T beside it; interleaved, one warm-up each."""
    k = ctx.keys
    common = ["-A", "tcp/22", "-a", CLI_IP, "-D", SRV_IP, "--key-base64-rijndael", k.enc_b64,
              "--key-base64-hmac", k.hmac_b64]
    cmds = {"python": ([sys.executable, "-c", "pass"], False),
            "spa-lite": ([sys.executable, "-m", "spa_lite", "send", "--no-rc-file", "-T"] + common,
                         True)}
    if ctx.tools["fwknop"]:
        cmds["fwknop"] = ([ctx.tools["fwknop"], "--no-rc-file", "--no-save-args", "-T",
                           "--use-hmac"] + common, True)
    times = {name: [] for name in cmds}
    for i in range(ctx.p["client_runs"] + 1):
        for name, (argv, out) in cmds.items():
            dt = wall(argv, ctx.env, out)
            if i:
                times[name].append(dt * 1000)
    med = {n: median(v) for n, v in times.items()}
    say("client_send_vs_interpreter: python %.1f ms, spa-lite send -T %.1f ms, fwknop -T %s ms"
        % (med["python"], med["spa-lite"], fmt(med.get("fwknop"))))
    r = make_result("client_send_vs_interpreter", "ms", med["spa-lite"], med["python"],
                    ref_key="baseline", runs=ctx.p["client_runs"],
                    spa_lite_spread=spread(times["spa-lite"]),
                    baseline_spread=spread(times["python"]),
                    fwknop=med.get("fwknop"), fwknop_spread=spread(times.get("fwknop", [])),
                    fwknop_ratio=ratio(med.get("fwknop"), med["python"]),
                    ratio_best=ratio(min(times["spa-lite"]), min(times["python"])),
                    note="wall time of one process: spa-lite send -T (build + self-check, print) "
                         "vs %s -c pass; fwknop -T beside it" % sys.executable)
    if not ctx.tools["fwknop"]:
        r["missing"] = ctx.missing("fwknop")
    return [r]


def target(r: dict):
    rt = r.get("ratio")
    return "ratio <= 1.5", None if rt is None else rt <= 1.5


def beside(r: dict) -> list:
    if r.get("spa_lite") is None:
        return []
    return ["client, fastest runs: spa-lite send -T %s x the bare interpreter; fwknop -T: %s ms "
            "(%s x the bare interpreter)" % (fmt(r.get("ratio_best")), fmt(r.get("fwknop")),
                                             fmt(r.get("fwknop_ratio")))]
