"""The context of one run: counts, tools, keys, temp dir, namespace, and the packets
and files the pcap-file results share (made once, when first needed)."""

import os
import sys
import time

from .common import FWKNOPD_PKG, JUNK_POOL, PROFILES, child_env, say, tool
from .cpurun import fwknopd_counts, spa_lite_counts
from .packets import (Keys, access_text, fwknopd_pcap_conf, invalid_packets, spa_lite_pcap_conf,
                      spa_packet, write_pcap, write_private)


class Context:
    """What every measurement needs: counts, tools found, keys, temp dir, the namespace."""

    def __init__(self, profile: str, tmp: str, junk_rate: int) -> None:
        self.profile_name = profile
        self.junk_rate = junk_rate   # packets/s of junk during the flood (--junk-rate)
        self.p = PROFILES[profile]
        self.tmp = tmp
        self.env = child_env(tmp)
        self.root = os.geteuid() == 0
        self.tools = {name: tool(name) for name in FWKNOPD_PKG}
        self.keys = Keys()
        self.ns = None          # namespace for the pcap and idle runs (isolation, lo only)
        self.counts_of = {"spa-lite": spa_lite_counts, "fwknopd": fwknopd_counts}
        self._packets = None
        self.results = {}        # results produced so far in this run, by name
        self._pcap_cfg = None

    def packets(self) -> "PcapSet":
        """The packets and pcap files the results share, built when first asked for."""
        if self._packets is None:
            self._packets = PcapSet(self)
        return self._packets

    def pcap_cfg(self) -> dict:
        """The config files of the pcap-file runs (see pcap_configs), made once."""
        if self._pcap_cfg is None:
            self._pcap_cfg = pcap_configs(self)
        return self._pcap_cfg

    def missing(self, *names) -> list:
        out = ["%s (Debian package %s)" % (n, FWKNOPD_PKG[n]) for n in names if not self.tools[n]]
        if "ip" in names and not self.root:
            out.append("root (network namespaces)")
        return out

    def wrap(self, argv):
        return ["ip", "netns", "exec", self.ns] + argv if self.ns else argv

    def path(self, name: str) -> str:
        return os.path.join(self.tmp, name)

    def spa_lite_pcap(self, conf, access, pcap, count, digest=None, test=True):
        argv = [sys.executable, "-m", "spa_lite", "server", "-f", "-c", conf, "-a", access,
                "--pcap-file", pcap, "-C", str(count)]
        if digest:
            argv += ["-d", digest]
        if test:
            argv.append("-t")
        return self.wrap(argv)

    def fwknopd_pcap(self, conf, access, pcap, count, digest):
        return self.wrap([self.tools["fwknopd"], "-f", "-t", "-c", conf, "-a", access,
                          "--pcap-file", pcap, "-C", str(count), "-d", digest,
                          "-p", self.path("fwknopd.pid")])


# ------------------------------------------------------------------ pcap-based CPU results
class PcapSet:
    """The packets and files every CPU result shares, made once per run."""

    def __init__(self, ctx: Context) -> None:
        p, k = ctx.p, ctx.keys
        n = max(p["invalid_packets"], p["stanza_packets"], JUNK_POOL)
        t = time.perf_counter()
        self.invalid = invalid_packets(k, n + 1)
        self.valid = [spa_packet(k, "tcp/22") for _ in range(p["valid_packets"] + 1)]
        self.check = spa_packet(k, "tcp/22")      # its digest goes into the replay caches
        say("built %d invalid and %d valid SPA packets in %.1f s"
            % (len(self.invalid), len(self.valid), time.perf_counter() - t))
        self.files = {}

    def pcap(self, ctx, name: str, payloads) -> str:
        if name not in self.files:
            self.files[name] = ctx.path(name + ".pcap")
            write_pcap(self.files[name], payloads)
        return self.files[name]


def pcap_configs(ctx):
    """fwknopd.conf/access.conf pairs for the pcap runs, and where each keeps its digests."""
    c = {}
    c["fw_conf"] = fwknopd_pcap_conf(ctx.path("fwknopd.conf"), ctx.tmp)
    c["sl_conf"] = spa_lite_pcap_conf(ctx.path("spa-lite.conf"))
    c["access"] = write_private(ctx.path("access.conf"), access_text(ctx.keys))
    c["fw_digest"] = ctx.path("fwknopd-digest.cache")
    c["sl_digest"] = ctx.path("spa-lite-digest")
    return c
