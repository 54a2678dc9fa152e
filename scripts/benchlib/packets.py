"""SPA packets, pcap files, config files and replay caches that the measurements feed
to both daemons. The packet builder is spa-lite's own (wire-compatible, tested)."""

import base64
import hashlib
import os
import socket
import struct
import time

from spa_lite.core import fields, message, wire
from spa_lite.server.replay import replay_key

from .common import CLI_IP, SPA_PORT, SRV_IP


class Keys:
    """One encryption and one HMAC key (base64 as access.conf wants them); fresh per run."""

    def __init__(self) -> None:
        self.enc = os.urandom(32)
        self.hmac = os.urandom(64)
        self.enc_b64 = base64.b64encode(self.enc).decode()
        self.hmac_b64 = base64.b64encode(self.hmac).decode()


def spa_packet(keys: Keys, access: str, hmac_key=None, allow_ip: str = CLI_IP) -> bytes:
    """A real SPA packet (fresh random value and salt, current time, AES-CBC + HMAC-SHA256).
    With another ``hmac_key`` it is well formed and of realistic length but fails the HMAC."""
    m = message.SpaMessage(fields.make_rand_value(os.urandom(8)), "bench", int(time.time()),
                           fields.ACCESS_MSG, "%s,%s" % (allow_ip, access))
    return wire.build(m, keys.enc, os.urandom(8), "cbc", hmac_key or keys.hmac,
                      "sha256").encode()


def invalid_packets(keys: Keys, n: int):
    """Distinct packets encrypted with the right key but MACed with a foreign one: what a
    scanner replaying someone else's knocks, or a misconfigured client, sends."""
    foreign = os.urandom(64)
    return [spa_packet(keys, "tcp/22", hmac_key=foreign) for _ in range(n)]


def _ipv4_checksum(header: bytes) -> int:
    s = sum(struct.unpack("!10H", header))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(payload: bytes, sport: int) -> bytes:
    """Ethernet + IPv4 + UDP (checksum 0, legal for IPv4) from the client to the SPA port."""
    udp = struct.pack("!HHHH", sport, SPA_PORT, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton(CLI_IP), socket.inet_aton(SRV_IP))
    ip = ip[:10] + struct.pack("!H", _ipv4_checksum(ip)) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00"
    return eth + ip + udp


def write_pcap(path: str, payloads) -> int:
    """Classic pcap, microsecond timestamps, LINKTYPE_ETHERNET; one record per payload."""
    now = time.time()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, p in enumerate(payloads):
            frame = udp_frame(p, 1024 + i % 60000)
            ts = now + i * 1e-5
            fh.write(struct.pack("<IIII", int(ts), int((ts % 1) * 1e6), len(frame), len(frame)))
            fh.write(frame)
    return len(payloads)


# ------------------------------------------------------------------ config files
def write_private(path: str, text: str) -> str:
    """Config files hold keys: 0600, as both daemons expect (they warn about loose modes)."""
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)
    return path


def access_text(keys: Keys, extra: str = "") -> str:
    return "SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n%s" % (keys.enc_b64, keys.hmac_b64,
                                                                 extra)


def many_stanzas(n: int) -> str:
    """n stanzas that all match the source but none of which holds the packets' keys."""
    return "\n".join(access_text(Keys()) for _ in range(n))


def fwknopd_pcap_conf(path: str, run_dir: str) -> str:
    """Own run dir; one pcap_dispatch reads the whole file (its 100 ms sleep between batches
    would only stretch wall time, never CPU); aging off as the packets are replayed later."""
    return write_private(path, "FWKNOP_RUN_DIR %s;\nENABLE_DIGEST_PERSISTENCE Y;\n"
                               "ENABLE_SPA_PACKET_AGING N;\nPCAP_DISPATCH_COUNT 1000000;\n"
                               "PCAP_LOOP_SLEEP 1000;\n" % run_dir)


def spa_lite_pcap_conf(path: str) -> str:
    """The same switches as fwknopd's (spa-lite turns aging off for pcap files anyway)."""
    return write_private(path, "ENABLE_DIGEST_PERSISTENCE Y;\nENABLE_SPA_PACKET_AGING N;\n")


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def fwknopd_cache(path: str, entries: int, check_packet: bytes) -> None:
    """fwknopd's digest.cache format (as fwknopd 2.6.10 itself writes it):
    ``<b64 sha256 of the raw SPA data> <proto> <src> <sport> <dst> <dport> <time>``; the last
    line is the check packet, so a replay verdict proves the file was loaded."""
    now = int(time.time())
    with open(path, "w") as fh:
        fh.write("# <digest> <proto> <src_ip> <src_port> <dst_ip> <dst_port> <time>\n")
        for i in range(entries - 1):
            fh.write("%s 17 10.213.200.%d %d %s %d %d\n" % (
                b64_sha256(b"filler %d" % i), 2 + i % 250, 1024 + i % 60000, SRV_IP, SPA_PORT, now))
        fh.write("%s 17 %s 1024 %s %d %d\n" % (b64_sha256(check_packet), CLI_IP, SRV_IP,
                                               SPA_PORT, now))


def spa_lite_cache(path: str, entries: int, check_packet: bytes) -> None:
    """spa-lite's own format ``<b64 sha256 of the canonical SPA data> <expiry epoch>``. The
    expiry is an hour ahead so load() keeps every entry (it drops expired ones)."""
    expiry = int(time.time()) + 3600
    with open(path, "w") as fh:
        fh.write("# spa-lite digest cache: <sha256-b64 of canonical SPA data> <expiry>\n")
        for i in range(entries - 1):
            fh.write("%s %d\n" % (b64_sha256(b"filler %d" % i), expiry))
        fh.write("%s %d\n" % (replay_key(check_packet), expiry))
