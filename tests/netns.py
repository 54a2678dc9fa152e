"""A tiny network-namespace lab for tests: two or more namespaces joined by veth pairs, with
IPv4 (10.213.x.x) and IPv6 (fd13:x::/64, DAD off) addresses, torn down on exit.

    with Lab() as lab:
        srv, cli = lab.pair("srv", "cli", "10.213.60.1", "10.213.60.2",
                            "fd13:60::1", "fd13:60::2")
        lab.run(cli, "ping", "-c1", "10.213.60.1")
        p = lab.spawn(srv, "python3", "-m", "spa_lite", "server", ...)

Names are made unique per process so parallel or leftover runs cannot collide.
"""

import os
import subprocess


def stop_process(p, sig=None, timeout: float = 5) -> None:
    """Stop a child politely (SIGTERM, or ``sig``), then for sure (SIGKILL) after ``timeout``
    seconds: a test's daemons never outlive it, even when one ignores the first signal."""
    if p.poll() is not None:
        return
    if sig is None:
        p.terminate()
    else:
        p.send_signal(sig)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout)


class Lab:
    def __init__(self, prefix: str = "spat") -> None:
        self.prefix = "%s%d" % (prefix, os.getpid() % 100000)
        self.namespaces = []
        self.procs = []
        self.links = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def ns(self, name: str) -> str:
        full = "%s-%s" % (self.prefix, name)
        subprocess.run(["ip", "netns", "del", full], capture_output=True)
        subprocess.run(["ip", "netns", "add", full], check=True)
        self.namespaces.append(full)
        self.run(full, "ip", "link", "set", "lo", "up")
        return full

    def pair(self, a: str, b: str, ip_a: str, ip_b: str, ip6_a=None, ip6_b=None, prefix=24):
        """Two new namespaces joined by a veth pair; returns (ns_a, ns_b). The devices are
        named ``veth-a``/``veth-b`` inside them."""
        na, nb = self.ns(a), self.ns(b)
        self.link(na, nb, ip_a, ip_b, ip6_a, ip6_b, prefix)
        return na, nb

    def link(self, na, nb, ip_a, ip_b, ip6_a=None, ip6_b=None, prefix=24, dev_a="veth-a", dev_b="veth-b"):
        self.links += 1
        subprocess.run(["ip", "link", "add", dev_a, "netns", na, "type", "veth", "peer", dev_b,
                        "netns", nb], check=True)
        ends = ((na, dev_a, ip_a, ip6_a), (nb, dev_b, ip_b, ip6_b))
        for ns, dev, ip, ip6 in ends:
            self.run(ns, "ip", "addr", "add", "%s/%d" % (ip, prefix), "dev", dev)
            if ip6:
                self.run(ns, "ip", "-6", "addr", "add", ip6 + "/64", "dev", dev, "nodad")
            self.run(ns, "ip", "link", "set", dev, "up")
        # A veth end can stay NO-CARRIER after its first "up"; re-assert until both are up.
        import time
        end = time.time() + 5
        while time.time() < end:
            states = [self.run(ns, "cat", "/sys/class/net/%s/operstate" % dev).stdout.strip()
                      for ns, dev, _, _ in ends]
            if states == ["up", "up"]:
                return
            for ns, dev, _, _ in ends:
                self.run(ns, "ip", "link", "set", dev, "up")
            time.sleep(0.1)
        raise RuntimeError("veth %s/%s did not come up: %s" % (dev_a, dev_b, states))

    def run(self, ns: str, *argv, check=True, timeout=30, **kw):
        r = subprocess.run(["ip", "netns", "exec", ns] + list(argv), capture_output=True,
                           text=True, timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed: %s" % (" ".join(argv), r.stderr.strip()))
        return r

    def spawn(self, ns: str, *argv, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", ns] + list(argv), **kw)
        self.procs.append(p)
        return p

    def tcp_connect(self, ns: str, addr: str, port: int, timeout: float = 1.0, source=None) -> bool:
        """Whether a TCP connection from namespace ``ns`` (optionally from address ``source``)
        to addr:port succeeds within ``timeout`` seconds."""
        src = "(%r, 0)" % source if source else "None"
        code = ("import socket,sys\ns=socket.create_connection((%r,%d),%r,%s)\ns.close()"
                % (addr, port, timeout, src))
        import sys
        return self.run(ns, sys.executable, "-c", code, check=False).returncode == 0

    def close(self) -> None:
        for p in self.procs:
            stop_process(p)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces = []
