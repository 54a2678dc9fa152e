"""The kernel filter's payload checks and the capture paths that read what it lets through.

A valid packet must never be dropped: the filter is checked against packets of every
encryption mode, digest type, HMAC type and message type, made by spa-lite's own client and
by the real fwknop client (UDP, TCP and HTTP), over IPv4 and IPv6; the BPF program must
agree with its Python model (lengths.py) on random junk; and the real kernel runs the same
program on UDP sockets and on the packet socket (ring and plain reads)."""

import json
import math
import os
import select
import socket
import struct
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from spa_lite.core import digests, fields, message, wire
from spa_lite.core.b64 import b64decode_key
from spa_lite.server import bpf, capture, frames, lengths, pcapfile
from spa_lite.server.config import Stanza, parse_access
from spa_lite.server.model import Candidate
from spa_lite.server.policy import PolicyOptions, decide
from spa_lite.server.replay import ReplayCache
from tests.conftest import HMAC_KEY_B64, KEY_B64, need_root, need_tool
from tests.netns import Lab

K, H = b64decode_key(KEY_B64), b64decode_key(HMAC_KEY_B64)
HMACS = [None] + sorted(digests.DIGEST_TYPES)
MODES = ["cbc", "ecb", "cfb", "ofb", "ctr", "legacy"]
B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def stanza(hmac_type=None, cmd_exec=False, gpg=False, mode="cbc"):
    """An access.conf stanza as the server parses it (a GnuPG one made by hand until the
    parser knows GnuPG keywords)."""
    if gpg:
        st_ = Stanza(1, "test:1")
        st_.gpg = True
        return st_
    text = "SOURCE ANY\nKEY_BASE64 %s\nENCRYPTION_MODE %s\n" % (KEY_B64, mode)
    if hmac_type:
        text += "HMAC_KEY_BASE64 %s\nHMAC_DIGEST_TYPE %s\n" % (HMAC_KEY_B64, hmac_type.upper())
    if cmd_exec:
        text += "ENABLE_CMD_EXEC Y\n"
    return parse_access("test", [], text=text)[0]


def programs(stanzas, http=False):
    check = bpf.payload_check(stanzas, http)
    return (bpf.compile_filter({"udp", "tcp"}, 62201, 62201, payload=check),
            bpf.compile_udp_filter(check))


def passes(progs, payload: bytes) -> bool:
    """Whether both programs keep ``payload`` over IPv4/IPv6 UDP and TCP (asserting they
    agree with each other)."""
    packet_prog, udp_prog = progs
    seen = set()
    for src, dst in (("10.213.0.2", "10.213.0.1"), ("fd13:213::2", "fd13:213::1")):
        for proto in ("udp", "tcp"):
            pkt = pcapfile.build_ip_packet(src, dst, 40000, 62201, payload, proto)
            seen.add(bpf.run(packet_prog, pkt) > 0)
    seen.add(bpf.run(udp_prog, struct.pack("!HHHH", 40000, 62201, 8 + len(payload), 0)
                     + payload) > 0)
    assert len(seen) == 1, (len(payload), payload[:8])
    return seen.pop()


# ------------------------------------------------------------------ the length model
@pytest.mark.parametrize("hmac_type", HMACS)
def test_rijndael_rule_is_exactly_the_wire_lengths(hmac_type):
    """Between its bounds, the rule accepts exactly the lengths of '='-stripped base64 over
    16*m bytes minus the 10-character prefix plus the HMAC."""
    h = digests.b64_len(hmac_type) if hmac_type else 0
    rule = lengths.rijndael_rule(hmac_type, cmd_exec=True)
    wire_lengths = {math.ceil(64 * m / 3) - 10 + h for m in range(1, 120)}
    lo, hi, _, first = rule
    assert first == b"89+/"
    assert {n for n in range(2000) if lengths.accepts([rule], n)} == \
        {n for n in wire_lengths if lo <= n <= hi}


def test_a_gnupg_stanza_widens_the_filter_and_no_stanza_closes_it():
    any_len = lengths.payload_rules([stanza("sha256"), stanza(gpg=True)])
    assert all(lengths.accepts(any_len, n) for n in range(400, 1501))   # every GnuPG length
    assert not lengths.accepts(any_len, 139) and not lengths.accepts(any_len, 1501)
    gpg_only = lengths.payload_rules([stanza(gpg=True)])
    assert not any(lengths.accepts(gpg_only, n) for n in range(140, 400))  # too short for GnuPG
    assert lengths.payload_rules([]) == []
    assert not passes(programs([]), b"8" * 183)
    merged = lengths.payload_rules([stanza("sha256"), stanza("sha256", cmd_exec=True),
                                    stanza(None)])
    assert len(merged) == 2                     # one rule per HMAC length, widest bounds


# ------------------------------------------------------------------ real packets pass
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(MODES), hmac_type=st.sampled_from(HMACS),
       digest=st.sampled_from(sorted(digests.DIGEST_TYPES)),
       user=st.text("abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=40),
       ports=st.lists(st.integers(1, 65535), min_size=1, max_size=12),
       mtype=st.sampled_from([fields.ACCESS_MSG, fields.NAT_ACCESS_MSG,
                              fields.CLIENT_TIMEOUT_ACCESS_MSG,
                              fields.CLIENT_TIMEOUT_NAT_ACCESS_MSG, fields.LOCAL_NAT_ACCESS_MSG,
                              fields.COMMAND_MSG]),
       server_auth=st.one_of(st.none(), st.text("abcdefgh0123", min_size=1, max_size=40)),
       timeout=st.integers(1, 65535), salt=st.binary(min_size=8, max_size=8))
def test_spa_lite_packets_of_every_kind_pass(mode, hmac_type, digest, user, ports, mtype,
                                             server_auth, timeout, salt):
    if mode == "legacy" and hmac_type:
        return                                  # the client refuses legacy mode with HMAC
    if mtype == fields.COMMAND_MSG:
        msg_text = "10.213.0.2,echo " + "x" * (len(ports) * 4)
    else:
        msg_text = "10.213.0.2," + ",".join("tcp/%d" % p for p in ports)
    nat = "10.213.9.9,%d" % ports[0] if mtype in (2, 4, 5, 6) else None
    tmo = timeout if mtype in (3, 4, 6) else None
    m = message.SpaMessage(fields.make_rand_value(salt), user, int(time.time()), mtype, msg_text,
                           nat_access=nat, server_auth=server_auth, client_timeout=tmo,
                           digest_type=digest)
    try:
        data = wire.build(m, K[:16] if mode == "legacy" else K, salt, mode,
                          H if hmac_type else None, hmac_type or "sha256").encode()
    except Exception as exc:                    # too long for Rijndael: not a packet
        assert "too long" in str(exc)
        return
    st_ = stanza(hmac_type, cmd_exec=mtype == fields.COMMAND_MSG, mode=mode)
    c = Candidate("10.213.0.2", "10.213.0.1", "udp", 40000, 62201, data, time.time())
    if decide(c, [st_], PolicyOptions(test_mode=True), ReplayCache(None),
              int(time.time())).verdict == "junk":
        # not SPA data for the server (wire.build lets a 390..399-character packet without
        # HMAC through that no server decrypts): the filter may drop it
        assert hmac_type is None and len(data) >= 390
        return
    assert passes(programs([st_]), data), (mode, hmac_type, len(data))
    assert passes(programs([stanza("md5"), st_, stanza(gpg=True)]), data)


def fwknop_packets():
    """(stanza, wire) pairs from the real fwknop client: every mode, HMAC and digest type."""
    exe = need_tool("fwknop")
    out = []
    combos = [(m, "sha256", "sha256") for m in ("cbc", "ecb", "cfb", "ofb", "ctr")]
    combos += [("cbc", h, d) for h in sorted(digests.DIGEST_TYPES) for d in ("sha256", "md5")]
    combos += [("cbc", "sha512", d) for d in sorted(digests.DIGEST_TYPES)]
    combos += [("legacy", None, "sha256"), ("cbc", None, "sha512")]
    for mode, hmac_type, digest in combos:
        argv = [exe, "--no-rc-file", "--no-save-args", "-T", "-v", "-D", "10.213.0.1",
                "-a", "10.213.0.2", "-A", "tcp/22,udp/1194", "-M", mode, "-m", digest,
                "--key-base64-rijndael", KEY_B64]
        if hmac_type:
            argv += ["--key-base64-hmac", HMAC_KEY_B64, "--hmac-digest-type", hmac_type]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, HOME="/nonexistent"))
        assert r.returncode == 0, r.stderr
        data = [l.split(": ", 1)[1] for l in r.stdout.splitlines() if "Final SPA Data" in l][0]
        out.append((stanza(hmac_type, mode=mode), data.strip().encode()))
    return out


def test_real_fwknop_packets_pass_and_are_valid():
    pairs = fwknop_packets()
    everyone = [s for s, _ in pairs]
    for st_, data in pairs:
        assert passes(programs([st_]), data), (st_.mode, st_.hmac_type, len(data))
        assert passes(programs(everyone), data)
        # and the packet really is one the stanza grants: a filter test on real data
        c = Candidate("10.213.0.2", "10.213.0.1", "udp", 40000, 62201, data, time.time())
        d = decide(c, [st_], PolicyOptions(test_mode=True), ReplayCache(None), int(time.time()))
        assert d.verdict == "grant", (st_.mode, st_.hmac_type, d.reason)
    # SPA over HTTP as the client sends it (-P http): only with ENABLE_SPA_OVER_HTTP
    st_, data = pairs[0]
    req = (b"GET /" + data.replace(b"+", b"-").replace(b"/", b"_") + b" HTTP/1.0\r\n"
           b"User-Agent: Fwknop/2.6.10\r\nAccept: */*\r\nHost: 10.213.0.1\r\n"
           b"Connection: close\r\n\r\n")
    assert passes(programs([st_], http=True), req)
    assert passes(programs([st_], http=True), b"get /" + req[5:])
    assert not passes(programs([st_]), req)


# ------------------------------------------------------------------ junk is dropped
@settings(max_examples=400, deadline=None)
@given(head=st.binary(min_size=0, max_size=4) | st.sampled_from([b"8", b"+", b"GET ", b"get "]),
       body=st.sampled_from([b"A", b"/", b"\x00", b"="]), n=st.integers(0, 1600),
       hmacs=st.lists(st.sampled_from(HMACS + ["gpg"]), min_size=1, max_size=3),
       http=st.booleans())
def test_filter_agrees_with_its_model(head, body, n, hmacs, http):
    """The BPF program keeps a payload exactly when lengths.py and the base64 rule say so."""
    payload = (head + body * n)[:1600]
    if not payload:
        return
    stanzas = [stanza(gpg=True) if h == "gpg" else stanza(h) for h in hmacs]
    expect = (http and len(payload) >= 4 and payload[:4].upper() == b"GET ") or (
        len(payload) >= 4 and all(b in B64 for b in payload[:4])
        and lengths.accepts(lengths.payload_rules(stanzas), len(payload), payload[0]))
    assert passes(programs(stanzas, http), payload) == expect


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.integers(1, 65535))
def test_payload_filter_still_agrees_with_the_parser(data, port):
    """Whatever the payload-checking program passes, the parser reads as such a packet."""
    prog = bpf.compile_filter({"udp", "tcp"}, port, port,
                              payload=bpf.payload_check([stanza(gpg=True)], True))
    if bpf.run(prog, data) > 0:
        c = frames.parse_ip(data, 0)
        assert c is None or c.dport == port


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=40), st.binary(max_size=40))
def test_parsing_in_place_is_parsing_a_copy(pkt, before, after):
    buf = before + pkt + after
    a = frames.parse_ip_at(buf, len(before), len(before) + len(pkt), 1.0)
    b = frames.parse_ip(pkt, 1.0)
    assert (a is None) == (b is None)
    if a is not None:
        assert (a.src, a.dst, a.proto, a.sport, a.dport, a.payload) == \
            (b.src, b.dst, b.proto, b.sport, b.dport, b.payload)


# ------------------------------------------------------------------ the real kernel
def good_packet(hmac_type="sha256"):
    m = message.SpaMessage(fields.make_rand_value(os.urandom(8)), "bob", int(time.time()),
                           fields.ACCESS_MSG, "127.0.0.1,tcp/22")
    return wire.build(m, K, os.urandom(8), "cbc", H, hmac_type).encode()


def junk_for(good):
    return [good + b"A",                    # a length no configured HMAC gives
            b"!" + good[1:],                # not base64 text
            b"8" * 20,                      # far too short
            os.urandom(len(good))]          # random bytes of a possible length


def test_the_kernel_runs_the_program_on_udp_sockets():
    """Unprivileged: a UDP socket with the payload program gets the knock and none of the
    junk (the kernel really drops it, nothing reaches Python)."""
    src = capture.UdpSource(0, bind4="127.0.0.1", bind6=None)
    try:
        port = src.socks[0][0].getsockname()[1]
        src.port = port
        src.update_filter(bpf.payload_check([stanza("sha256")]))
        good = good_packet()
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for p in junk_for(good) + [good] + junk_for(good):
            tx.sendto(p, ("127.0.0.1", port))
        time.sleep(0.2)
        got = [c.payload for c in src.read_batch(100)]
        assert got == [good]
        src.update_filter(None)                 # off again: everything arrives
        tx.sendto(good + b"A", ("127.0.0.1", port))
        time.sleep(0.1)
        assert [c.payload for c in src.read_batch(100)] == [good + b"A"]
        tx.close()
    finally:
        src.close()


@pytest.mark.parametrize("ring", [True, False])
def test_packet_socket_ring_and_plain_reads(ring):
    """Both capture paths on a veth: the filter drops the junk, the knock arrives once with
    its addresses, and ``mode`` says which path runs."""
    need_root()
    with Lab() as lab:
        srv, cli = lab.pair("ksrv", "kcli", "10.213.61.1", "10.213.61.2",
                            "fd13:61::1", "fd13:61::2")
        good = good_packet()
        junk = junk_for(good)
        code = ("import socket, sys, time\n"
                "pk = [bytes.fromhex(h) for h in sys.argv[1:]]\n"
                "for dst, fam in (('10.213.61.1', socket.AF_INET), ('fd13:61::1', socket.AF_INET6)):\n"
                "    s = socket.socket(fam, socket.SOCK_DGRAM)\n"
                "    for p in pk:\n"
                "        s.sendto(p, (dst, 62201))\n")
        script = ("import sys, time, json\nsys.path.insert(0, %r)\n"
                  "from spa_lite.server import capture, bpf\n"
                  "from tests.test_kernel_filter import stanza\n"
                  "src = capture.PacketSocketSource('veth-a', {'udp'}, 62201, 62201, "
                  "payload=bpf.payload_check([stanza('sha256')]), ring=%r)\n"
                  "print(src.mode, flush=True)\n"
                  "got, end = [], time.time() + 5\n"
                  "while len(got) < 2 and time.time() < end:\n"
                  "    capture.wait([src], 0.2)\n"
                  "    got += [(c.src, c.payload.decode()) for c in src.read_batch(64)]\n"
                  "time.sleep(0.3)\n"
                  "capture.wait([src], 0.2)\n"
                  "got += [(c.src, c.payload.decode()) for c in src.read_batch(64)]\n"
                  "print(json.dumps(got), flush=True)\n"
                  % (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ring))
        p = lab.spawn(srv, sys.executable, "-c", script, stdout=subprocess.PIPE, text=True,
                      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        mode = p.stdout.readline().strip()
        assert mode.startswith("TPACKET_V3 ring") if ring else mode == "recvfrom", mode
        time.sleep(0.2)
        lab.run(cli, sys.executable, "-c", code, *[x.hex() for x in junk + [good] + junk])
        r, _, _ = select.select([p.stdout], [], [], 10)
        assert r, "capture got nothing"
        got = json.loads(p.stdout.readline())
        assert got == [["10.213.61.2", good.decode()], ["fd13:61::2", good.decode()]]


def test_a_ring_that_cannot_be_set_up_falls_back_to_plain_reads():
    need_root()
    with Lab() as lab:
        srv, _ = lab.pair("fsrv", "fcli", "10.213.62.1", "10.213.62.2")
        r = lab.run(srv, sys.executable, "-c",
                    "import sys; sys.path.insert(0, %r)\n"
                    "from spa_lite.server import capture\n"
                    "class NoRing:\n"
                    "    def __init__(self, *a, **k):\n"
                    "        raise OSError(22, 'Invalid argument')\n"
                    "capture.Ring = NoRing\n"
                    "src = capture.PacketSocketSource('veth-a', {'udp'}, 62201, 62201)\n"
                    "print(src.mode)\n" % os.path.dirname(os.path.dirname(
                        os.path.abspath(__file__))))
        assert r.stdout.strip() == "recvfrom (no ring: Invalid argument)"


@pytest.mark.parametrize("ring", [True, False])
def test_an_interface_going_down_does_not_make_the_loop_spin(ring):
    """ENETDOWN is reported by poll until it is read: the source must read it, or the daemon
    would spin at 100% CPU while pppoe-wan is down."""
    need_root()
    with Lab() as lab:
        srv, _ = lab.pair("dsrv", "dcli", "10.213.65.1", "10.213.65.2")
        script = ("import sys, time\nsys.path.insert(0, %r)\n"
                  "from spa_lite.server import capture\n"
                  "src = capture.PacketSocketSource('veth-a', {'udp'}, 62201, 62201, ring=%r)\n"
                  "print('ready', flush=True)\n"
                  "sys.stdin.readline()\n"
                  "wakeups, end = 0, time.time() + 1.0\n"
                  "while time.time() < end:\n"
                  "    if capture.wait([src], 0.2):\n"
                  "        wakeups += 1\n"
                  "        src.read_batch(64)\n"
                  "print(wakeups, flush=True)\n"
                  % (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ring))
        p = lab.spawn(srv, sys.executable, "-c", script, stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        lab.run(srv, "ip", "link", "set", "veth-a", "down")
        p.stdin.write("go\n")
        p.stdin.flush()
        r, _, _ = select.select([p.stdout], [], [], 10)
        assert r
        assert int(p.stdout.readline()) <= 2
