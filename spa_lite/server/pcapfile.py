"""Classic pcap files: a reader for ``--pcap-file`` (both byte orders, micro- and nanosecond
timestamps) and a small writer plus frame builders so tests can make captures."""

import ipaddress
import struct

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
MAX_RECORD = 262144          # bytes in one captured record (tcpdump's largest snaplen)
READ_CHUNK = 1 << 20


class PcapError(ValueError):
    """The file is not a readable pcap file (one line, names the file)."""


def read_pcap(path: str):
    """Yield (timestamp, linktype, frame) for every record; a truncated tail ends quietly
    (counted in the generator's return value as the number of truncated records)."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise PcapError("%s: %s" % (path, exc.strerror or exc))
    with fh:
        head = fh.read(24)
        if len(head) < 24:
            raise PcapError("%s: not a pcap file (too short)" % path)
        for endian in ("<", ">"):
            magic = struct.unpack(endian + "I", head[:4])[0]
            if magic in (MAGIC_US, MAGIC_NS):
                break
        else:
            if head[:4] == b"\x0a\x0d\x0d\x0a":
                raise PcapError("%s: pcapng is not supported; convert with "
                                "'tcpdump -r in.pcapng -w out.pcap'" % path)
            raise PcapError("%s: not a pcap file (bad magic)" % path)
        div = 1e9 if magic == MAGIC_NS else 1e6
        linktype = struct.unpack(endian + "I", head[20:24])[0] & 0x0FFFFFFF
        rec = struct.Struct(endian + "IIII")
        truncated = 0
        buf, off = b"", 0      # records are cut from 1 MiB chunks: two file reads per
        while True:            # record cost more than the rest of a junk packet's parsing
            if len(buf) - off < 16 + MAX_RECORD:
                more = fh.read(READ_CHUNK)
                buf, off = buf[off:] + more, 0
            if off == len(buf):
                break
            if len(buf) - off < 16:
                truncated += 1
                break
            sec, frac, incl, _orig = rec.unpack_from(buf, off)
            if incl > MAX_RECORD:
                raise PcapError("%s: corrupt record length %d" % (path, incl))
            end = off + 16 + incl
            if end > len(buf):
                truncated += 1
                break
            yield sec + frac / div, linktype, buf[off + 16:end]
            off = end
        return truncated


def write_pcap(path: str, records, linktype: int = 1) -> None:
    """records: iterable of (timestamp, frame bytes)."""
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", MAGIC_US, 2, 4, 0, 0, 262144, linktype))
        for ts, frame in records:
            sec = int(ts)
            fh.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(frame), len(frame)))
            fh.write(frame)


def _ip_header(src: str, dst: str, proto: int, l4: bytes) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0,
                        s.packed, d.packed)
        csum = _checksum(h)
        return h[:10] + struct.pack("!H", csum) + h[12:] + l4
    return struct.pack("!IHBB16s16s", 0x60000000, len(l4), proto, 64, s.packed, d.packed) + l4


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def build_ip_packet(src: str, dst: str, sport: int, dport: int, payload: bytes,
                    proto: str = "udp") -> bytes:
    """An IPv4/IPv6 UDP or TCP packet (L4 checksum left zero, as fwknop's raw modes do)."""
    if proto == "udp":
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
        return _ip_header(src, dst, 17, l4)
    l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + payload
    return _ip_header(src, dst, 6, l4)


def build_frame(src: str, dst: str, sport: int, dport: int, payload: bytes, proto: str = "udp",
                vlan=None) -> bytes:
    """An Ethernet frame (optionally 802.1Q tagged) holding build_ip_packet(...)."""
    ip = build_ip_packet(src, dst, sport, dport, payload, proto)
    etype = 0x86DD if ":" in src else 0x0800
    head = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
    if vlan is not None:
        head += struct.pack("!HH", 0x8100, vlan)
    return head + struct.pack("!H", etype) + ip
