"""daemon_rss_vs_interpreter: an idle daemon's peak memory against a bare interpreter."""

import os
import subprocess
import sys
import time

from ..common import BenchError, RSS_SETTLE, fmt, make_result, median, ratio, say, start, stop
from ..lab import wait_log
from ..packets import access_text, write_private


ORDER = 70
NAMES = ("daemon_rss_vs_interpreter",)


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size so far (VmHWM): start-up peaks count, which is what a router's
    free memory must cover."""
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise BenchError("no VmHWM for pid %d" % pid)


def run(ctx) -> list:
    """Peak RSS of each idle daemon (VmHWM after start-up + RSS_SETTLE) against a bare
    interpreter that imports what a daemon minimally needs (socket, hashlib, hmac)."""
    ready = {}
    d = ctx.path("rss")
    os.makedirs(d, exist_ok=True)
    conf_sl = write_private(os.path.join(d, "sl.conf"), "UDPSERV_PORT 62201;\n"
                                                        "ENABLE_DIGEST_PERSISTENCE Y;\n")
    conf_fw = write_private(os.path.join(d, "fw.conf"), "FWKNOP_RUN_DIR %s;\nUDPSERV_PORT 62202;\n"
                                                        "ENABLE_DIGEST_PERSISTENCE Y;\n" % d)
    access = write_private(os.path.join(d, "access.conf"), access_text(ctx.keys))
    digest = os.path.join(d, "digest")
    open(digest, "w").close()
    ready["baseline"] = ([sys.executable, "-c", "import socket, hashlib, hmac, time; "
                                                 "print('ready', flush=True); time.sleep(60)"],
                         "ready")
    ready["spa-lite"] = (ctx.wrap([sys.executable, "-m", "spa_lite", "server", "-f", "-t", "-U",
                                   "-c", conf_sl, "-a", access, "-d", digest]), "started:")
    if ctx.root:   # packet capture needs CAP_NET_RAW
        ready["spa-lite-capture"] = (ctx.wrap([sys.executable, "-m", "spa_lite", "server", "-f",
                                               "-t", "-i", "lo", "-c", conf_sl, "-a", access,
                                               "-d", digest]), "started:")
    if ctx.tools["fwknopd"]:
        ready["fwknopd"] = (ctx.wrap([ctx.tools["fwknopd"], "-f", "-t", "-U", "-c", conf_fw, "-a",
                                      access, "-d", os.path.join(d, "fw1.cache"), "-p",
                                      os.path.join(d, "fw1.pid")]), "Kicking off UDP server")
    if ctx.tools["fwknopd"] and ctx.root:
        ready["fwknopd-pcap"] = (ctx.wrap([ctx.tools["fwknopd"], "-f", "-t", "-i", "lo", "-c",
                                           conf_fw, "-a", access,
                                           "-d", os.path.join(d, "fw2.cache"),
                                           "-p", os.path.join(d, "fw2.pid")]),
                                 "Starting fwknopd main event loop")
    samples = {name: [] for name in ready}
    for rep in range(ctx.p["rss_repeats"]):
        procs = {}
        try:
            for name, (argv, marker) in ready.items():
                log = os.path.join(d, name + ".log")
                with open(log, "w") as fh:
                    procs[name] = (start(argv, stdout=fh, stderr=subprocess.STDOUT, env=ctx.env),
                                   log, marker)
            for name, (p, log, marker) in procs.items():
                wait_log(log, marker, 20, p)
            time.sleep(RSS_SETTLE)
            for name, (p, log, marker) in procs.items():
                samples[name].append(vm_hwm_kib(p.pid) / 1024.0)
        finally:
            for p, _, _ in procs.values():
                stop(p)
    med = {n: median(v) for n, v in samples.items()}
    say("daemon_rss_vs_interpreter (MiB): %s" % ", ".join("%s %.1f" % kv for kv in med.items()))
    r = make_result("daemon_rss_vs_interpreter", "MiB", med["spa-lite"], med["baseline"],
                    ref_key="baseline", repeats=ctx.p["rss_repeats"],
                    fwknopd=med.get("fwknopd"),
                    fwknopd_ratio=ratio(med.get("fwknopd"), med["baseline"]),
                    spa_lite_capture=med.get("spa-lite-capture"),
                    fwknopd_pcap=med.get("fwknopd-pcap"),
                    note="VmHWM %.0f s after start: spa-lite server -U -t vs `python -c \"import "
                         "socket, hashlib, hmac\"`; fwknopd -U -t beside it; *_capture/_pcap: "
                         "packet capture on lo instead of a UDP socket" % RSS_SETTLE)
    if not ctx.tools["fwknopd"]:
        r["missing"] = ctx.missing("fwknopd")
    return [r]


def target(r: dict):
    rt = r.get("ratio")
    return "ratio <= 1.5", None if rt is None else rt <= 1.5


def beside(r: dict) -> list:
    if r.get("fwknopd") is None:
        return []
    return ["idle fwknopd -U: %s MiB (%s x the bare interpreter); with capture on lo: fwknopd "
            "%s MiB, spa-lite %s MiB" % (fmt(r["fwknopd"]), fmt(r["fwknopd_ratio"]),
                                         fmt(r.get("fwknopd_pcap")),
                                         fmt(r.get("spa_lite_capture")))]
