"""The two-namespace veth lab for the live results, and starting each daemon in it."""

import json
import os
import select
import subprocess
import sys
import time

from .common import (BenchError, CLI_IP, KNOCK_PORT_BASE, PROBE_INTERVAL, SPA_PORT, SRV_IP,
                     _run_checked, del_ns, make_ns, start, stop, tail)
from .packets import access_text, write_private


LISTENER = r"""
import selectors, socket, sys
base, count = int(sys.argv[1]), int(sys.argv[2])
sel = selectors.DefaultSelector()
for port in range(base + 1, base + count + 1):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        try:
            c, _ = key.fileobj.accept()
            c.close()
        except OSError:
            pass
"""

# Runs in the client namespace. A dropped SYN is retried by the kernel only after 1 s, so
# waiting for the door means a fresh non-blocking connect every PROBE_INTERVAL.
AGENT = r"""
import json, select, socket, sys, time
srv, spa_port, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

def door(port, t0, limit):
    pending, poller, next_try = {}, select.poll(), t0
    found = None
    while found is None and time.monotonic() - t0 < limit:
        now = time.monotonic()
        if now >= next_try:
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect((srv, port))
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                s = None
            if s is not None:
                pending[s.fileno()] = (s, now)
                poller.register(s, select.POLLOUT)
            next_try = now + interval
        for fd, ev in poller.poll(1):
            s, _ = pending.pop(fd)
            poller.unregister(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 and found is None:
                found = time.monotonic()
            s.close()
        for fd, (s, born) in list(pending.items()):
            if time.monotonic() - born > 0.2:
                poller.unregister(fd)
                s.close()
                del pending[fd]
    for s, _ in pending.values():
        s.close()
    return None if found is None else found - t0

print("ready", flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    t0 = time.monotonic()
    if cmd.get("payload"):
        udp.sendto(cmd["payload"].encode(), (srv, spa_port))
    lat = door(cmd["port"], t0, cmd["limit"])
    print(json.dumps({"latency": lat}), flush=True)
"""

JUNK_SENDER = r"""
import json, socket, sys, time
srv, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[5]
rate, duration = float(sys.argv[3]), float(sys.argv[4])
pkts = [bytes.fromhex(l.strip()) for l in open(path) if l.strip()]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
if len(sys.argv) > 6:
    s.bind((sys.argv[6], 0))     # a source address of its own (per-source budgets)
addr, n, i, sent, errors = (srv, port), len(pkts), 0, 0, 0
print("ready", flush=True)
t0 = time.monotonic()
end = t0 + duration
while True:
    now = time.monotonic()
    if now >= end:
        break
    burst = min(int((now - t0) * rate) - sent - errors, 2000)
    if burst <= 0:
        time.sleep(0.0002)
        continue
    for _ in range(burst):
        try:
            s.sendto(pkts[i], addr)
            sent += 1
        except OSError:
            errors += 1
        i = (i + 1) % n
print(json.dumps({"sent": sent, "errors": errors, "elapsed": time.monotonic() - t0}), flush=True)
"""

SRV_DEV, CLI_DEV = "sbench-s", "sbench-c"


class Lab:
    """Two fresh namespaces joined by a veth pair: the server side (daemon, hidden TCP
    service on ports KNOCK_PORT_BASE+1..+n) and the client (knocker, junk sender)."""

    def __init__(self, ctx, tag: str, ports: int) -> None:
        self.ctx, self.ports = ctx, ports
        self.srv = make_ns(tag + "-srv")
        self.cli = make_ns(tag + "-cli")
        _run_checked(["ip", "link", "add", SRV_DEV, "netns", self.srv, "type", "veth", "peer",
                      CLI_DEV, "netns", self.cli])
        for ns, dev, addr in ((self.srv, SRV_DEV, SRV_IP), (self.cli, CLI_DEV, CLI_IP)):
            self.run(ns, "ip", "addr", "add", addr + "/24", "dev", dev)
            self.run(ns, "ip", "link", "set", dev, "up")
        self._wait_carrier()
        self.listener = self.spawn_py(self.srv, LISTENER, str(KNOCK_PORT_BASE), str(ports))
        self.agent = self.spawn_py(self.cli, AGENT, SRV_IP, str(SPA_PORT), str(PROBE_INTERVAL))
        self.daemon = None

    def run(self, ns, *argv):
        return _run_checked(["ip", "netns", "exec", ns] + list(argv))

    def _wait_carrier(self) -> None:
        end = time.time() + 5
        while time.time() < end:
            states = [self.run(ns, "cat", "/sys/class/net/%s/operstate" % dev).stdout.strip()
                      for ns, dev in ((self.srv, SRV_DEV), (self.cli, CLI_DEV))]
            if states == ["up", "up"]:
                return
            time.sleep(0.05)
        raise BenchError("veth pair did not come up: %s" % states)

    def spawn_py(self, ns, code, *args):
        p = start(["ip", "netns", "exec", ns, sys.executable, "-c", code] + list(args),
                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                  text=True, bufsize=1, env=self.ctx.env)
        if read_line(p, 10) != "ready":
            raise BenchError("lab helper did not start in %s" % ns)
        return p

    def knock(self, port: int, payload, limit: float):
        """Send one SPA packet (None: just probe) and return the seconds until a TCP connect
        to ``port`` succeeded, or None if it did not within ``limit``."""
        cmd = {"port": port, "limit": limit, "payload": payload.decode() if payload else None}
        self.agent.stdin.write(json.dumps(cmd) + "\n")
        self.agent.stdin.flush()
        return json.loads(read_line(self.agent, limit + 10))["latency"]

    def close(self) -> None:
        for p in (self.daemon, self.agent, self.listener):
            if p is not None:
                stop(p)
        del_ns(self.srv)
        del_ns(self.cli)


def read_line(p, timeout: float) -> str:
    """One line from a helper's stdout, or an error after ``timeout`` (never hang)."""
    r, _, _ = select.select([p.stdout], [], [], timeout)
    if not r:
        raise BenchError("no answer from a helper within %.0f s" % timeout)
    return p.stdout.readline().strip()


def wait_log(path: str, marker: str, timeout: float, proc) -> None:
    """Wait until a daemon's log shows it is ready (or it died)."""
    end = time.time() + timeout
    while time.time() < end:
        if marker in tail(path, 100000):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise BenchError("daemon did not start (no %r): %s" % (marker, tail(path)))


def start_spa_lite_live(ctx, lab: Lab, d: str, access_body=None) -> str:
    """spa-lite on the veth with its own default drop (nftables PROTECT_PORTS); the access
    stanza is a Rijndael one unless ``access_body`` is given."""
    ports = ", ".join("tcp/%d" % (KNOCK_PORT_BASE + i) for i in range(1, lab.ports + 1))
    conf = write_private(os.path.join(d, "fwknopd.conf"),
                         "PCAP_INTF %s;\nFIREWALL_TYPE nftables;\nPROTECT_PORTS %s;\n"
                         "ENABLE_DIGEST_PERSISTENCE Y;\nFLUSH_AT_EXIT Y;\n" % (SRV_DEV, ports))
    access = write_private(os.path.join(d, "access.conf"),
                           access_body or access_text(ctx.keys, "FW_ACCESS_TIMEOUT 60\n"))
    digest = os.path.join(d, "digest")
    open(digest, "w").close()   # an existing file: no state-loss hold-back for a fresh lab
    log = os.path.join(d, "daemon.log")
    with open(log, "w") as fh:
        lab.daemon = start(["ip", "netns", "exec", lab.srv, sys.executable, "-m", "spa_lite",
                            "server", "-f", "-c", conf, "-a", access, "-d", digest],
                           stdout=fh, stderr=subprocess.STDOUT, env=ctx.env)
    wait_log(log, "started:", 20, lab.daemon)
    return log


def start_fwknopd_live(ctx, lab: Lab, d: str, access_body=None) -> str:
    """fwknopd with its compiled-in iptables backend and its default capture settings (a
    pcap_dispatch of PCAP_DISPATCH_COUNT 100, then PCAP_LOOP_SLEEP 100 ms); our own DROP rule
    for the hidden ports, which fwknopd's FWKNOP_INPUT jump (position 1) overrides."""
    lab.run(lab.srv, ctx.tools["iptables"], "-A", "INPUT", "-p", "tcp", "--dport",
            "%d:%d" % (KNOCK_PORT_BASE + 1, KNOCK_PORT_BASE + lab.ports), "-j", "DROP")
    conf = write_private(os.path.join(d, "fwknopd.conf"),
                         "PCAP_INTF %s;\nFWKNOP_RUN_DIR %s;\nENABLE_DIGEST_PERSISTENCE Y;\n"
                         % (SRV_DEV, d))
    access = write_private(os.path.join(d, "access.conf"),
                           access_body or access_text(ctx.keys, "FW_ACCESS_TIMEOUT 60\n"))
    log = os.path.join(d, "daemon.log")
    with open(log, "w") as fh:
        lab.daemon = start(["ip", "netns", "exec", lab.srv, ctx.tools["fwknopd"], "-f", "-c",
                            conf, "-a", access, "-d", os.path.join(d, "digest.cache"),
                            "-p", os.path.join(d, "fwknopd.pid")],
                           stdout=fh, stderr=subprocess.STDOUT, env=ctx.env)
    wait_log(log, "Starting fwknopd main event loop", 20, lab.daemon)
    return log
