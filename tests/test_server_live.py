"""spa-lite server against real packets: the real fwknop client and spa-lite send knock over
veth pairs in network namespaces (AF_PACKET with the kernel BPF filter, and UDP mode, IPv4
and IPv6, UDP/TCP/HTTP), a TUN device stands for an L3 link (PPPoE, WireGuard), pcap files
of real fwknop packets give exact verdicts, and replay state survives restarts."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from spa_lite.server import pcapfile
from tests.conftest import HMAC_KEY_B64, KEY_B64, REPO, need_root, need_tool
from tests.netns import Lab

KEYS = ["--key-base64-rijndael", KEY_B64, "--key-base64-hmac", HMAC_KEY_B64]
ENV = dict(os.environ, PYTHONPATH=REPO)


def access_file(tmp_path, extra="", name="access.conf"):
    p = tmp_path / name
    p.write_text("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n%s" % (KEY_B64, HMAC_KEY_B64, extra))
    os.chmod(p, 0o600)
    return str(p)


def conf_file(tmp_path, text):
    p = tmp_path / "fwknopd.conf"
    p.write_text(text)
    os.chmod(p, 0o600)
    return str(p)


class Server:
    """``spa-lite server --json`` in a namespace; collects events and stderr lines."""

    def __init__(self, lab, ns, *args):
        argv = [sys.executable, "-m", "spa_lite", "server", "--json"] + list(args)
        self.p = lab.spawn(ns, *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=ENV) if lab else subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        self.out, self.err = [], []
        self.started = threading.Event()
        threading.Thread(target=self._pump, args=(self.p.stdout, self.out), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.p.stderr, self.err), daemon=True).start()

    def _pump(self, stream, sink):
        for line in stream:
            sink.append(line)
            if "started:" in line:
                self.started.set()

    def wait_started(self, timeout=10):
        if not self.started.wait(timeout):
            raise AssertionError("server did not start: %s" % "".join(self.err))

    def events(self, timeout=20):
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise AssertionError("server did not finish; events so far: %s\n%s"
                                 % ("".join(self.out), "".join(self.err)))
        time.sleep(0.1)
        assert "Traceback" not in "".join(self.err), "".join(self.err)
        return [json.loads(l) for l in self.out if l.strip()]


def fwknop(lab, ns, *args):
    exe = need_tool("fwknop")
    r = lab.run(ns, exe, "--no-rc-file", "--no-save-args", *args, check=False,
                env=dict(os.environ, HOME="/nonexistent"))
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def spa_send(lab, ns, *args):
    r = lab.run(ns, sys.executable, "-m", "spa_lite", "send", "--no-rc-file", *args, env=ENV,
                check=False)
    assert r.returncode == 0, r.stderr
    return r


def udp_raw(lab, ns, host, port, payload: bytes):
    fam = "AF_INET6" if ":" in host else "AF_INET"
    code = ("import socket\ns=socket.socket(socket.%s,socket.SOCK_DGRAM)\n"
            "s.sendto(%r,(%r,%d))\n" % (fam, payload, host, port))
    lab.run(ns, sys.executable, "-c", code)


@pytest.fixture
def lab():
    need_root()
    with Lab() as lab:
        lab.srv, lab.cli = lab.pair("srv", "cli", "10.213.60.1", "10.213.60.2",
                                    "fd13:60::1", "fd13:60::2")
        yield lab


def test_packet_socket_v4_v6_and_kernel_filter(lab, tmp_path):
    tcpdump = need_tool("tcpdump")
    cap = str(tmp_path / "cap.pcap")
    dump = lab.spawn(lab.srv, tcpdump, "-i", "veth-a", "-U", "-w", cap, "udp", "port", "62201",
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    srv = Server(lab, lab.srv, "-c", "/dev/null", "-a", access_file(tmp_path), "-i", "veth-a",
                 "-t", "-C", "3", "-d", str(tmp_path / "digest"))
    srv.wait_started()
    time.sleep(0.5)                                  # let tcpdump settle too
    udp_raw(lab, lab.cli, "10.213.60.1", 9999, b"8" + b"A" * 180)      # other port: kernel drops
    # no HMAC-SHA256 packet is 201 characters long (nor starts with '!'): dropped in the kernel
    udp_raw(lab, lab.cli, "10.213.60.1", 62201, b"8" + b"A" * 200)
    udp_raw(lab, lab.cli, "10.213.60.1", 62201, b"!" + b"A" * 182)
    fwknop(lab, lab.cli, "-A", "tcp/22", "-a", "10.213.60.2", "-D", "10.213.60.1", *KEYS, "--use-hmac")
    spa_send(lab, lab.cli, "-A", "tcp/22", "-a", "fd13:60::2", "-D", "fd13:60::1", *KEYS)
    udp_raw(lab, lab.cli, "10.213.60.1", 62201, b"8" + b"A" * 182)     # a possible length: Python
    ev = srv.events()
    assert "via TPACKET_V3 ring" in "".join(srv.err)
    assert [(e["verdict"], e["src"], e["dst"]) for e in ev] == [
        ("grant", "10.213.60.2", "10.213.60.1"),
        ("grant", "fd13:60::2", "fd13:60::1"),
        ("junk", "10.213.60.2", "10.213.60.1")]
    assert all(e["dport"] == 62201 for e in ev)
    assert ev[0]["grant"]["ports"] == ["tcp/22"] and ev[1]["grant"]["address"] == "fd13:60::2"
    # the same traffic, captured by tcpdump, through --pcap-file gives the same verdicts
    time.sleep(0.5)
    dump.terminate()
    dump.wait(5)
    again = Server(None, None, "-c", "/dev/null", "-a", access_file(tmp_path), "-t",
                   "--pcap-file", cap)
    # a pcap file has no kernel filter: the two packets it dropped are junk here
    assert [e["verdict"] for e in again.events()] == ["junk", "junk", "grant", "grant", "junk"]


def test_udp_server_mode(lab, tmp_path):
    conf = conf_file(tmp_path, "UDPSERV_PORT 40555;\n")
    srv = Server(lab, lab.srv, "-c", conf, "-a", access_file(tmp_path), "-U", "-t", "-C", "2")
    srv.wait_started()
    fwknop(lab, lab.cli, "-A", "udp/1194", "-a", "10.213.60.2", "-D", "10.213.60.1", "-p",
           "40555", *KEYS, "--use-hmac")
    spa_send(lab, lab.cli, "-A", "tcp/22", "-s", "-D", "fd13:60::1", "-p", "40555", *KEYS)
    ev = srv.events()
    assert [(e["verdict"], e["src"], e["dst"]) for e in ev] == [
        ("grant", "10.213.60.2", "0.0.0.0"), ("grant", "fd13:60::2", "::")]
    assert ev[1]["grant"]["address"] == "fd13:60::2"       # -s: the packet's source


def test_tcp_and_http_payloads(lab, tmp_path):
    conf = conf_file(tmp_path, "PCAP_FILTER udp or tcp port 62201;\nENABLE_SPA_OVER_HTTP Y;\n")
    listener = ("import socket\ns=socket.socket()\ns.bind(('0.0.0.0',62201))\ns.listen(5)\n"
                "while True:\n c,_=s.accept()\n c.settimeout(2)\n"
                " try:\n  c.recv(4096)\n except OSError:\n  pass\n c.close()\n")
    lab.spawn(lab.srv, sys.executable, "-c", listener)
    srv = Server(lab, lab.srv, "-c", conf, "-a", access_file(tmp_path), "-i", "veth-a", "-t", "-C", "2")
    srv.wait_started()
    time.sleep(0.3)
    spa_send(lab, lab.cli, "-A", "tcp/22", "-a", "10.213.60.2", "-D", "10.213.60.1", "-P", "tcp", *KEYS)
    spa_send(lab, lab.cli, "-A", "tcp/23", "-a", "10.213.60.2", "-D", "10.213.60.1", "-P", "http", *KEYS)
    ev = srv.events()
    assert [(e["verdict"], e["proto"], e["access"]) for e in ev] == [
        ("grant", "tcp", "10.213.60.2,tcp/22"), ("grant", "tcp", "10.213.60.2,tcp/23")]


TUN_WRITER = r"""
import fcntl, os, struct, subprocess, sys, time
sys.path.insert(0, %(repo)r)
from spa_lite.server.pcapfile import build_ip_packet
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", b"spatun0", 0x0001 | 0x1000))  # TUNSETIFF, IFF_TUN|IFF_NO_PI
subprocess.run(["ip", "addr", "add", "10.213.63.1/24", "dev", "spatun0"], check=True)
subprocess.run(["ip", "link", "set", "spatun0", "up"], check=True)
open(%(ready)r, "w").close()
end = time.time() + 15
while not os.path.exists(%(go)r) and time.time() < end:
    time.sleep(0.05)
for wire in open(%(packets)r).read().split():
    os.write(fd, build_ip_packet("10.213.63.2", "10.213.63.1", 40000, 62201, wire.encode()))
time.sleep(2)
"""


def test_cooked_capture_on_an_l3_tun_device(lab, tmp_path):
    """A TUN device (ARPHRD_NONE, no link header) stands for pppoe-wan or wg0."""
    r = fwknop(lab, lab.cli, "-A", "tcp/22", "-a", "10.213.63.2", "-D", "10.213.63.1", "-T", "-v",
               *KEYS, "--use-hmac")
    wire = [l.split(": ", 1)[1] for l in r.stdout.splitlines() if "Final SPA Data" in l][0]
    (tmp_path / "packets").write_text(wire + "\n" + "8" + "Z" * 182 + "\n")   # a possible length
    ready, go = str(tmp_path / "ready"), str(tmp_path / "go")
    lab.spawn(lab.srv, sys.executable, "-c", TUN_WRITER % {
        "repo": REPO, "ready": ready, "go": go, "packets": str(tmp_path / "packets")})
    end = time.time() + 10
    while not os.path.exists(ready) and time.time() < end:
        time.sleep(0.05)
    assert os.path.exists(ready), "tun device not created"
    assert lab.run(lab.srv, "cat", "/sys/class/net/spatun0/type").stdout.strip() == "65534"
    srv = Server(lab, lab.srv, "-c", "/dev/null", "-a", access_file(tmp_path), "-i", "spatun0",
                 "-t", "-C", "2")
    srv.wait_started()
    open(go, "w").close()
    ev = srv.events()
    assert [(e["verdict"], e["src"]) for e in ev] == [("grant", "10.213.63.2"), ("junk", "10.213.63.2")]


# ------------------------------------------------------------------ pcap verdicts, restarts
def fwknop_wire(*args):
    exe = need_tool("fwknop")
    r = subprocess.run([exe, "--no-rc-file", "--no-save-args", "-T", "-v", "-D", "127.0.0.1",
                        "-A", "tcp/22", "-a", "10.213.64.2"] + list(args),
                       capture_output=True, text=True, timeout=20)
    return [l.split(": ", 1)[1] for l in r.stdout.splitlines() if "Final SPA Data" in l][0]


def write_capture(path, payloads):
    pcapfile.write_pcap(path, [(1000 + i, pcapfile.build_frame("10.213.64.2", "10.213.64.1", 40000 + i,
                                                               62201, p))
                               for i, p in enumerate(payloads)])


def test_pcap_of_real_fwknop_packets_gives_exact_verdicts(tmp_path):
    with_hmac = fwknop_wire(*KEYS, "--use-hmac")
    no_hmac = fwknop_wire("--key-rijndael", "fwknoptest")
    flipped = with_hmac[:60] + ("A" if with_hmac[60] != "A" else "B") + with_hmac[61:]
    payloads = [with_hmac, flipped, with_hmac, with_hmac + "==", "U2FsdGVkX1" + with_hmac,
                no_hmac, no_hmac + "==", no_hmac + "=", with_hmac + "\n"]
    cap = str(tmp_path / "real.pcap")
    write_capture(cap, [p.encode() for p in payloads])
    acc = access_file(tmp_path, "\nSOURCE ANY\nKEY fwknoptest\n")
    ev = Server(None, None, "-c", "/dev/null", "-a", acc, "-t", "--pcap-file", cap).events()
    assert [(e["verdict"], e["stanza"]) for e in ev] == [
        ("grant", 1), ("junk", None), ("replay", None), ("replay", None), ("junk", None),
        ("grant", 2), ("replay", None), ("replay", None), ("junk", None)]
    assert "prefix" in ev[4]["reason"] and "base64" in ev[8]["reason"]


def test_restart_with_and_without_the_digest_file(tmp_path):
    """The same captured packet after restarts: refused with the digest file (replay) and
    without it (replay floor), while a packet made after the start window is granted."""
    conf = conf_file(tmp_path, "ENABLE_SPA_PACKET_AGING Y;\n")
    acc = access_file(tmp_path, "CMD_CYCLE_OPEN /bin/true $IP\nCMD_CYCLE_CLOSE NONE\n")
    digest = tmp_path / "digest.cache"
    digest.write_text("")                             # a daemon ran here before
    os.chmod(digest, 0o600)
    cap = str(tmp_path / "one.pcap")
    write_capture(cap, [fwknop_wire(*KEYS, "--use-hmac").encode()])

    def run():
        return Server(None, None, "-c", conf, "-a", acc, "-d", str(digest), "--pcap-file", cap).events()

    first = run()
    assert [e["verdict"] for e in first] == ["grant"]
    assert len([l for l in digest.read_text().splitlines() if not l.startswith("#")]) == 1
    assert [e["verdict"] for e in run()] == ["replay"]               # restart, file kept
    digest.unlink()                                                  # restart, file lost
    ev = run()
    assert [e["verdict"] for e in ev] == ["reject"] and "replay floor" in ev[0]["reason"]
    assert digest.exists() and "#state-lost" in digest.read_text()
    assert [e["verdict"] for e in run()] == ["replay"]              # recorded by the last run
    # respawn inside the window: a packet made before this restart is still below the floor
    write_capture(cap, [fwknop_wire(*KEYS, "--use-hmac").encode()])
    ev = run()
    assert [e["verdict"] for e in ev] == ["reject"] and "replay floor" in ev[0]["reason"]
