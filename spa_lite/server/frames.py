"""Packet bytes -> Candidate, for captured frames and pcap records. Pure functions that return
None for anything they cannot use: a malformed packet never raises.

Live capture uses cooked (SOCK_DGRAM) packet sockets, so the data starts at the IP header on
every link type (Ethernet, PPPoE, WireGuard, tunnels; VLAN tags are already removed by the
kernel). pcap files may also carry Ethernet (with 802.1Q tags), Linux SLL, BSD null/loopback
or raw IP. Non-first IPv4 fragments are ignored (an SPA packet fits one datagram; the first
fragment alone would be truncated, so fragmented packets are dropped entirely).
"""

import struct

from spa_lite.server.model import Candidate

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = (0x8100, 0x88A8)
IPPROTO_TCP = 6
IPPROTO_UDP = 17
_IPV6_EXT = (0, 43, 60)          # hop-by-hop, routing, destination options (44: fragment)


def _l4(proto: int, buf, p: int, stop: int, src: bytes, dst: bytes, now: float):
    """The Candidate for the TCP/UDP segment ``buf[p:stop]``; ``src``/``dst`` are the packed
    addresses (the Candidate turns them into text only if something asks). Only the payload
    is copied out of ``buf``."""
    # Header fields are read byte-wise: cheaper than struct calls, and this runs per packet.
    n = stop - p
    if proto == IPPROTO_UDP:
        if n < 8:
            return None
        sport, dport = buf[p] << 8 | buf[p + 1], buf[p + 2] << 8 | buf[p + 3]
        ulen = buf[p + 4] << 8 | buf[p + 5]
        payload = buf[p + 8:p + ulen if 8 <= ulen <= n else stop]
        name = "udp"
    elif proto == IPPROTO_TCP:
        if n < 20:
            return None
        sport, dport = buf[p] << 8 | buf[p + 1], buf[p + 2] << 8 | buf[p + 3]
        off = (buf[p + 12] >> 4) * 4
        if off < 20 or off > n:
            return None
        payload = buf[p + off:stop]
        name = "tcp"
    else:
        return None
    if not payload:
        return None
    return Candidate(None, None, name, sport, dport, payload, now, None, (src, dst))


def parse_ip_at(buf, start: int, end: int, now: float):
    """The IPv4 or IPv6 packet ``buf[start:end]`` -> Candidate or None. ``buf`` may be
    bytes or a capture ring's mmap: the packet is read in place and only the payload and
    the two addresses are copied."""
    n = end - start
    if n < 20:
        return None
    b0 = buf[start]
    version = b0 >> 4
    if version == 4:
        ihl = (b0 & 0x0F) * 4
        total = buf[start + 2] << 8 | buf[start + 3]
        if ihl < 20 or total < ihl or n < ihl:
            return None
        if buf[start + 6] & 0x3F or buf[start + 7]:     # MF set or an offset: a fragment
            return None
        return _l4(buf[start + 9], buf, start + ihl, start + min(total, n),
                   buf[start + 12:start + 16], buf[start + 16:start + 20], now)
    if version == 6:
        if n < 40:
            return None
        plen = buf[start + 4] << 8 | buf[start + 5]
        nxt = buf[start + 6]
        src, dst = buf[start + 8:start + 24], buf[start + 24:start + 40]
        p = start + 40
        stop = min(p + plen, end) if plen else end
        for _ in range(8):                       # bounded walk over extension headers
            if nxt in _IPV6_EXT:
                if stop - p < 8:
                    return None
                nxt, p = buf[p], p + (buf[p + 1] + 1) * 8
            elif nxt == 44:                      # fragment header: only unfragmented use
                if stop - p < 8 or (buf[p + 2] << 8 | buf[p + 3]) & 0xFFF9:
                    return None
                nxt, p = buf[p], p + 8
            else:
                break
        return _l4(nxt, buf, p, stop, src, dst, now)
    return None


def parse_ip(packet: bytes, now: float):
    """An IPv4 or IPv6 packet (from its first byte) -> Candidate or None."""
    return parse_ip_at(packet, 0, len(packet), now)


def parse_ethernet(frame: bytes, now: float):
    """An Ethernet II frame, with up to two 802.1Q/802.1ad tags -> Candidate or None."""
    if len(frame) < 14:
        return None
    etype = frame[12] << 8 | frame[13]
    off = 14
    while etype in ETH_P_8021Q and off <= 18 and len(frame) >= off + 4:   # up to two tags
        etype = frame[off + 2] << 8 | frame[off + 3]
        off += 4
    if etype not in (ETH_P_IP, ETH_P_IPV6):
        return None
    return parse_ip(frame[off:], now)


def parse_sll(frame: bytes, now: float):
    """Linux cooked capture v1 (pcap link type 113)."""
    if len(frame) < 16 or struct.unpack_from("!H", frame, 14)[0] not in (ETH_P_IP, ETH_P_IPV6):
        return None
    return parse_ip(frame[16:], now)


def parse_null(frame: bytes, now: float):
    """BSD loopback (pcap link type 0): a 4-byte address family in host order."""
    return parse_ip(frame[4:], now) if len(frame) > 4 else None


PARSERS = {0: parse_null, 1: parse_ethernet, 101: parse_ip, 113: parse_sll, 228: parse_ip,
           229: parse_ip}


MAX_XFF_TEXT = 64   # characters of an X-Forwarded-For entry kept (for the refusal reason)


def unwrap_http(payload: bytes, allow_any_user_agent: bool = False):
    """SPA over HTTP, as fwknopd 2.6 accepts it: ``GET /<spa>`` with ``User-Agent: Fwknop``
    (unless ALLOW_ANY_USER_AGENT), '-' and '_' mapped back to '+' and '/'. Returns
    (spa bytes, X-Forwarded-For address or None), or None if this is not SPA over HTTP."""
    if payload[:5].upper() != b"GET /":
        return None
    if not allow_any_user_agent and b"User-Agent: Fwknop" not in payload:
        return None
    rest = payload[5:]
    end = len(rest)
    for ws in (b" ", b"\r", b"\n", b"\t"):
        i = rest.find(ws)
        if 0 <= i < end:
            end = i
    spa = rest[:end].replace(b"-", b"+").replace(b"_", b"/")
    xff = None
    i = payload.find(b"X-Forwarded-For:")
    if i >= 0:
        # The header is not covered by the HMAC: hand on its first entry as text (latin-1,
        # never fails); the policy accepts only a strict address literal.
        line = payload[i + 16:].split(b"\r\n", 1)[0].split(b"\n", 1)[0]
        xff = line.split(b",")[0].strip()[:MAX_XFF_TEXT].decode("latin-1")
    return spa, xff
