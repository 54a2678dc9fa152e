"""Capture sources. Each has ``fileno()`` (None for a file), ``read_batch(max_n)`` that drains
what is queued without blocking, and ``close()``; live ones also ``mode`` (how they read, for
the start line) and ``update_filter(payload)`` (the kernel filter, at start and on reload).
``wait`` blocks in the kernel (poll) until one is readable or the timeout ends, so there is
no sleep loop.

The cost of a packet should not depend on how packets are spaced: the packet socket reads
a TPACKET_V3 ring (one wakeup per block of packets, no system call per packet), the UDP
sockets drain until they would block, and the kernel filter (bpf.py) drops what cannot be
SPA data before any of it.
"""

import errno
import mmap
import select
import socket
import struct
import time

from spa_lite.server import bpf, frames, pcapfile
from spa_lite.server.model import Candidate

ETH_P_ALL = 0x0003
RCVBUF = 4 * 1024 * 1024
SO_DETACH_FILTER = 27
MAX_PAYLOAD_READ = 65535

# <linux/if_packet.h>
SOL_PACKET = 263
PACKET_RX_RING, PACKET_VERSION = 5, 10
TPACKET_V3 = 2
TP_STATUS_KERNEL, TP_STATUS_USER = 0, 1
BLOCK_STATUS = 8          # struct tpacket_block_desc: block_status, num_pkts, offset_to_first_pkt
PKTTYPE_AT = 48 + 10      # struct sockaddr_ll after the 48-byte tpacket3_hdr: sll_pkttype
_BLOCK_DESC = struct.Struct("III")     # block_status, num_pkts, offset_to_first_pkt
_TP3_HDR = struct.Struct("IIII10xH")   # tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_net
RING_BLOCK = 64 * 1024    # bytes per block: a few hundred SPA-sized packets
RING_BLOCKS = 16          # 1 MiB: room for 80 ms of a 50,000/s flood (a CPU quota's pause), and
                          # no more, since under a sustained overload a knock waits behind it all
RING_FRAME = 2048         # only validated by the kernel in V3 (packets are packed)
RETIRE_MS = 50            # a block with packets is handed over after at most this long (the
                          # latency a lone knock may add; fwknopd via libpcap: 100 ms)


def _big_rcvbuf(sock) -> None:
    """A 4 MiB receive queue, so a knock that arrives during a junk burst waits in the
    kernel instead of being dropped. As root SO_RCVBUFFORCE passes net.core.rmem_max (about
    200 KiB by default, a few hundred packets); otherwise the capped SO_RCVBUF is the best."""
    for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, RCVBUF)
            return
        except OSError:
            continue


class PacketSocketSource:
    """A cooked AF_PACKET socket on one interface with the SPA BPF filter in the kernel,
    read through a TPACKET_V3 ring when the kernel offers one (see Ring), else with one
    recv per packet into a preallocated buffer. ``mode`` says which, for the start line."""

    def __init__(self, ifname: str, protos, lo: int, hi: int, any_direction: bool = False,
                 payload=None, ring: bool = True) -> None:
        self.ifname = ifname
        self.protos, self.lo, self.hi = set(protos), lo, hi
        self.any_direction = any_direction
        self.ring = None
        self.ring_error = None
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        try:
            # Filter first, then bind: no unfiltered packet can be queued in between.
            self.update_filter(payload)
            if ring:
                try:
                    self.ring = Ring(self.sock, any_direction)
                except (OSError, ValueError) as exc:   # no TPACKET_V3, no mmap: plain reads
                    self.ring_error = getattr(exc, "strerror", None) or str(exc)
            if self.ring is None:
                _big_rcvbuf(self.sock)
            self.sock.bind((ifname, ETH_P_ALL))
            self.sock.setblocking(False)
        except OSError:
            self.close()
            raise
        if self.ring is None:
            self._buf = bytearray(MAX_PAYLOAD_READ)
            self._view = memoryview(self._buf)

    @property
    def mode(self) -> str:
        if self.ring is not None:
            return self.ring.describe()
        return "recvfrom" + (" (no ring: %s)" % self.ring_error if self.ring_error else "")

    def update_filter(self, payload=None) -> None:
        """(Re)compile and attach the kernel filter; ``payload`` from bpf.payload_check (None:
        ports only). Replacing a filter is atomic, so a reload can call this any time."""
        bpf.attach(self.sock, bpf.compile_filter(self.protos, self.lo, self.hi,
                                                 self.any_direction, payload))

    def fileno(self):
        return self.sock.fileno()

    def read_batch(self, max_n: int):
        if self.ring is not None:
            out = self.ring.read(max_n)
            if not out:
                # Woken with nothing to read: an error such as ENETDOWN (interface down) is
                # pending, and poll reports it until it is read (recvfrom would have).
                self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            return out
        out = []
        recv, view, parse = self.sock.recvfrom_into, self._view, frames.parse_ip
        outgoing = None if self.any_direction else socket.PACKET_OUTGOING
        for _ in range(max_n):
            try:
                n, addr = recv(self._buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.ENETDOWN):
                    break
                raise
            if addr[2] == outgoing:
                continue
            c = parse(bytes(view[:n]), time.time())
            if c is not None:
                out.append(c)
        return out

    def close(self) -> None:
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        self.sock.close()


class Ring:
    """A PACKET_RX_RING of TPACKET_V3 blocks, mapped into our memory (as libpcap does).

    The kernel fills a block with packets and hands it over when it is full or when
    RETIRE_MS pass after its first packet; only then does poll wake us. So a flood costs one
    wakeup per block instead of one system call per packet, and a lone knock waits at most
    RETIRE_MS. An empty block is never handed over: an idle link causes no wakeups at all.
    Packets are read from the mapping (one bytes copy each) and the block is given back.
    Needs only socket, mmap and struct (python3-light has no ctypes)."""

    def __init__(self, sock, any_direction: bool = False, block_size: int = RING_BLOCK,
                 blocks: int = RING_BLOCKS, retire_ms: int = RETIRE_MS) -> None:
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        frames_per_block = block_size // RING_FRAME
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, struct.pack(
            "7I", block_size, blocks, RING_FRAME, frames_per_block * blocks, retire_ms, 0, 0))
        self.map = mmap.mmap(sock.fileno(), block_size * blocks, mmap.MAP_SHARED,
                             mmap.PROT_READ | mmap.PROT_WRITE)
        self.block_size, self.blocks, self.retire_ms = block_size, blocks, retire_ms
        self.any_direction = any_direction
        self.cur = 0

    def describe(self) -> str:
        return "TPACKET_V3 ring (%d x %d KiB blocks, %d ms)" % (
            self.blocks, self.block_size // 1024, self.retire_ms)

    def read(self, max_n: int):
        """Candidates from the blocks the kernel has handed over, whole blocks at a time,
        until about ``max_n`` (a block is never split: it goes back to the kernel whole)."""
        out = []
        m, header, parse = self.map, _TP3_HDR.unpack_from, frames.parse_ip_at
        block_desc = _BLOCK_DESC.unpack_from
        outgoing = -1 if self.any_direction else socket.PACKET_OUTGOING
        while len(out) < max_n:
            base = self.cur * self.block_size
            status, count, first = block_desc(m, base + BLOCK_STATUS)
            if not status & TP_STATUS_USER:
                break
            p = base + first
            for _ in range(count):
                nxt, sec, nsec, snaplen, net = header(m, p)
                if m[p + PKTTYPE_AT] != outgoing:
                    start = p + net
                    c = parse(m, start, start + snaplen, sec + nsec * 1e-9)
                    if c is not None:
                        out.append(c)
                p += nxt
            struct.pack_into("I", m, base + BLOCK_STATUS, TP_STATUS_KERNEL)
            self.cur = (self.cur + 1) % self.blocks
        return out

    def close(self) -> None:
        self.map.close()


class BindError(OSError):
    """A configured listening socket could not be bound: the start stops (exit 2), as
    fwknopd's ``bind() failed``, instead of serving one address family silently."""


class UdpSource:
    """Plain UDP sockets (IPv4 and IPv6) on the SPA port; they never send anything. The
    destination is recorded as 0.0.0.0 / :: as fwknopd does in UDP-server mode.

    Every configured family must bind. The one exception is a kernel without IPv6 at all
    (no AF_INET6 sockets, or no IPv6 address to bind ``::``): then IPv4 alone runs and
    ``warnings`` says so, for the start to log."""

    NO_FAMILY = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)

    def __init__(self, port: int, bind4: str = "0.0.0.0", bind6: str = "::") -> None:
        self.socks = []
        self.warnings = []
        names = []
        for family, addr, name in ((socket.AF_INET, bind4, "IPv4"),
                                   (socket.AF_INET6, bind6, "IPv6")):
            if addr is None:
                continue
            try:
                s = socket.socket(family, socket.SOCK_DGRAM)
            except OSError as exc:
                if family == socket.AF_INET6 and exc.errno in self.NO_FAMILY:
                    self.warnings.append("IPv6 is not available here (%s): listening on UDP "
                                         "port %d for IPv4 only" % (exc.strerror, port))
                    continue
                self.close()
                raise BindError(exc.errno, "UDP port %d (%s): socket() failed: %s"
                                % (port, name, exc.strerror))
            try:
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                _big_rcvbuf(s)
                s.bind((addr, port))
                s.setblocking(False)
            except OSError as exc:
                s.close()
                if family == socket.AF_INET6 and exc.errno == errno.EADDRNOTAVAIL:
                    self.warnings.append("IPv6 is not available here (%s): listening on UDP "
                                         "port %d for IPv4 only" % (exc.strerror, port))
                    continue
                self.close()
                raise BindError(exc.errno, "UDP port %d (%s, %s): bind() failed: %s"
                                % (port, name, addr, exc.strerror))
            self.socks.append((s, "0.0.0.0" if family == socket.AF_INET else "::"))
            names.append(name)
        if not self.socks:
            raise BindError(errno.EADDRNOTAVAIL, "UDP port %d: no address family to listen on"
                            % port)
        self.port = port
        self.families = "+".join(names)

    def __str__(self) -> str:
        return "UDP port %d" % self.port

    def fileno(self):
        return self.socks[0][0].fileno()

    def filenos(self):
        return [s.fileno() for s, _ in self.socks]

    mode = "recvfrom"

    def update_filter(self, payload=None) -> None:
        """Attach (or replace) the payload checks of bpf.payload_check on every socket, so
        junk that cannot be SPA data is dropped in the kernel here too (None: no filter)."""
        for s, _ in self.socks:
            if payload is None:
                try:
                    s.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
                except OSError:
                    pass                       # ENOENT: there was none
            else:
                bpf.attach(s, bpf.compile_udp_filter(payload))

    def read_batch(self, max_n: int):
        """Drain each socket until it would block (or ``max_n``), one recv per datagram into
        a preallocated buffer (Python has no recvmmsg); one clock read per batch."""
        out = []
        if not hasattr(self, "_buf"):
            self._buf = bytearray(MAX_PAYLOAD_READ)
            self._view = memoryview(self._buf)
        buf, view, port = self._buf, self._view, self.port
        now = time.time()
        for s, dst in self.socks:
            recv = s.recvfrom_into
            for _ in range(max_n):
                try:
                    n, addr = recv(buf)
                except (BlockingIOError, InterruptedError):
                    break
                out.append(Candidate(addr[0], dst, "udp", addr[1], port, bytes(view[:n]), now))
        return out

    def close(self) -> None:
        for s, _ in self.socks:
            s.close()


class PcapFileSource:
    """Every UDP/TCP packet of a classic pcap file, with the capture timestamps."""

    def __init__(self, path: str) -> None:
        self.records = pcapfile.read_pcap(path)
        next_ = None
        try:                                   # read the header now so errors show at start
            next_ = next(self.records)
        except StopIteration:
            pass
        self._first = next_
        self.path = path
        self._linktype = self._parse = None

    def fileno(self):
        return None

    def read_batch(self, max_n: int):
        out = []
        while len(out) < max_n:
            if self._first is not None:
                rec, self._first = self._first, None
            else:
                try:
                    rec = next(self.records)
                except StopIteration:
                    break
            ts, linktype, frame = rec
            if linktype != self._linktype:     # one per file: look the parser up once
                self._parse = frames.PARSERS.get(linktype)
                if self._parse is None:
                    raise pcapfile.PcapError("%s: unsupported link type %d" % (self.path, linktype))
                self._linktype = linktype
            c = self._parse(frame, ts)
            if c is not None:
                out.append(c)
        return out

    def close(self) -> None:
        self.records.close()


def payload_filter(settings):
    """The payload part of the kernel filters for these settings (bpf.payload_check)."""
    return bpf.payload_check(settings.stanzas, settings.http)


def reconfigure(sources, settings) -> None:
    """Make the kernel filters follow ``settings`` (at start, and after a reload changed the
    stanzas or ENABLE_SPA_OVER_HTTP); sources without a filter are left alone."""
    payload = payload_filter(settings)
    for src in sources:
        if hasattr(src, "update_filter"):
            src.update_filter(payload)


class Waiter:
    """One poll object for a fixed set of sources, kept across wakeups (registering every
    time would cost more than the wait itself under a flood)."""

    def __init__(self, sources) -> None:
        self.poll = select.poll()
        self.by_fd = {}
        for s in sources:
            for fd in (s.filenos() if hasattr(s, "filenos") else [s.fileno()]):
                self.poll.register(fd, select.POLLIN)
                self.by_fd[fd] = s

    def ready(self, timeout):
        """The sources with something to read, after at most ``timeout`` seconds (None:
        no limit); an empty list when the time ran out."""
        ms = None if timeout is None else int(timeout * 1000) + 1
        seen = []
        for fd, _ in self.poll.poll(ms):
            s = self.by_fd[fd]
            if s not in seen:
                seen.append(s)
        return seen


def wait(sources, timeout):
    """Block until a source is readable or ``timeout`` seconds pass (None: forever); the
    readable sources. One Waiter per distinct source list is kept for the next call."""
    key = tuple(id(s) for s in sources)
    w = _WAITERS.get(key)
    if w is None:
        _WAITERS.clear()
        w = _WAITERS[key] = Waiter(sources)
    return w.ready(timeout)


_WAITERS = {}
