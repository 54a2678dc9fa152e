"""Frame parsing, the BPF program (in a userspace interpreter), pcap files, SPA over HTTP."""

import struct

import pytest
from hypothesis import given, settings, strategies as st

from spa_lite.server import bpf, frames, pcapfile
from spa_lite.server.capture import PcapFileSource

PAYLOAD = b"8" + b"A" * 180


@pytest.mark.parametrize("src,dst,proto", [
    ("10.213.0.1", "10.213.0.2", "udp"), ("10.213.0.1", "10.213.0.2", "tcp"),
    ("fd13:213::1", "fd13:213::2", "udp"), ("fd13:213::1", "fd13:213::2", "tcp")])
def test_parse_ip_and_ethernet(src, dst, proto):
    pkt = pcapfile.build_ip_packet(src, dst, 40000, 62201, PAYLOAD, proto)
    for c in (frames.parse_ip(pkt, 5.0),
              frames.parse_ethernet(pcapfile.build_frame(src, dst, 40000, 62201, PAYLOAD, proto), 5.0),
              frames.parse_ethernet(pcapfile.build_frame(src, dst, 40000, 62201, PAYLOAD, proto, vlan=7), 5.0)):
        assert (c.src, c.dst, c.proto, c.sport, c.dport, c.payload, c.time) == (
            src, dst, proto, 40000, 62201, PAYLOAD, 5.0)


def test_fragments_options_and_extension_headers():
    pkt = bytearray(pcapfile.build_ip_packet("10.0.0.1", "10.0.0.2", 1, 62201, PAYLOAD))
    pkt[6] = 0x20                                     # MF: first fragment
    assert frames.parse_ip(bytes(pkt), 0) is None
    # IPv4 with 4 bytes of options (IHL 6)
    base = pcapfile.build_ip_packet("10.0.0.1", "10.0.0.2", 1, 62201, PAYLOAD)
    opt = bytes([0x46]) + base[1:2] + struct.pack("!H", len(base) + 4) + base[4:20] + b"\x01" * 4 + base[20:]
    assert frames.parse_ip(opt, 0).payload == PAYLOAD
    # IPv6 with a destination-options header before UDP
    v6 = pcapfile.build_ip_packet("fd13::1", "fd13::2", 1, 62201, PAYLOAD)
    udp = v6[40:]
    ext = bytes([17, 0]) + b"\x01\x04\x00\x00\x00\x00"
    pkt6 = v6[:4] + struct.pack("!H", len(udp) + 8) + bytes([60]) + v6[7:40] + ext + udp
    assert frames.parse_ip(pkt6, 0).payload == PAYLOAD
    assert frames.parse_ip(pkt6[:50], 0) is None      # truncated


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_parsers_never_raise(data):
    for parse in frames.PARSERS.values():
        parse(data, 0)
    frames.unwrap_http(data)


def _accepts(prog, pkt, pkttype=0):
    return bpf.run(prog, pkt, pkttype) > 0


def test_bpf_program():
    prog = bpf.compile_filter({"udp"}, 62201, 62201)
    ok = pcapfile.build_ip_packet("10.0.0.1", "10.0.0.2", 1, 62201, PAYLOAD)
    assert _accepts(prog, ok)
    assert not _accepts(prog, ok, pkttype=4)                       # outgoing
    assert _accepts(bpf.compile_filter({"udp"}, 62201, 62201, any_direction=True), ok, 4)
    assert not _accepts(prog, pcapfile.build_ip_packet("10.0.0.1", "10.0.0.2", 1, 62200, PAYLOAD))
    assert not _accepts(prog, pcapfile.build_ip_packet("10.0.0.1", "10.0.0.2", 1, 62201, PAYLOAD, "tcp"))
    assert _accepts(prog, pcapfile.build_ip_packet("fd13::1", "fd13::2", 1, 62201, PAYLOAD))
    assert not _accepts(prog, pcapfile.build_ip_packet("fd13::1", "fd13::2", 1, 9, PAYLOAD))
    frag = bytearray(ok)
    frag[6] = 0x20
    assert not _accepts(prog, bytes(frag))
    both = bpf.compile_filter({"udp", "tcp"}, 1000, 2000)
    for port, want in ((999, False), (1000, True), (1500, True), (2000, True), (2001, False)):
        for proto in ("udp", "tcp"):
            pkt = pcapfile.build_ip_packet("10.0.0.1", "10.0.0.2", 1, port, PAYLOAD, proto)
            assert _accepts(both, pkt) == want, (port, proto)
    assert not _accepts(prog, b"\x45")                              # short: out of bounds -> drop


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(1, 65535))
def test_bpf_agrees_with_the_parser(data, port):
    """Whatever the kernel filter passes, the parser can read as a packet to that port."""
    prog = bpf.compile_filter({"udp", "tcp"}, port, port)
    if _accepts(prog, data):
        c = frames.parse_ip(data, 0)
        assert c is None or c.dport == port


def test_pcap_roundtrip_and_errors(tmp_path):
    path = str(tmp_path / "x.pcap")
    frames_ = [pcapfile.build_frame("10.0.0.1", "10.0.0.2", 5, 62201, PAYLOAD),
               pcapfile.build_frame("fd13::1", "fd13::2", 5, 62201, PAYLOAD, "tcp")]
    pcapfile.write_pcap(path, [(1000.5, f) for f in frames_])
    cands = PcapFileSource(path).read_batch(10)
    assert [(c.src, c.proto, c.time) for c in cands] == [("10.0.0.1", "udp", 1000.5),
                                                         ("fd13::1", "tcp", 1000.5)]
    raw = str(tmp_path / "raw.pcap")
    pcapfile.write_pcap(raw, [(1, pcapfile.build_ip_packet("10.0.0.1", "10.0.0.2", 5, 62201, PAYLOAD))], 101)
    assert PcapFileSource(raw).read_batch(10)[0].payload == PAYLOAD
    with open(path, "ab") as fh:
        fh.write(b"\x01\x02\x03")                    # torn last record
    assert len(PcapFileSource(path).read_batch(10)) == 2
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a pcap file at all.....")
    with pytest.raises(pcapfile.PcapError):
        PcapFileSource(str(bad))


def test_http_unwrap():
    spa = b"8abc+def/ghi"
    req = b"GET /8abc-def_ghi HTTP/1.1\r\nUser-Agent: Fwknop/2.6.10\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n"
    assert frames.unwrap_http(req) == (spa, "203.0.113.9")
    curl = req.replace(b"Fwknop/2.6.10", b"curl/8.0")
    assert frames.unwrap_http(curl) is None
    assert frames.unwrap_http(curl, allow_any_user_agent=True)[0] == spa
    assert frames.unwrap_http(b"POST / HTTP/1.1\r\n") is None
    # handed on as text: the policy refuses anything but a strict literal
    assert frames.unwrap_http(req.replace(b"203.0.113.9", b"not-an-ip"))[1] == "not-an-ip"
