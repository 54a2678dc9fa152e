"""Capture sources. Each has ``fileno()`` (None for a file), ``read_batch(max_n)`` that drains
what is queued without blocking, and ``close()``; ``wait`` blocks in the kernel (poll) until
one is readable or the timeout ends, so there is no sleep loop.
"""

import errno
import select
import socket
import time

from spa_lite.server import bpf, frames, pcapfile
from spa_lite.server.model import Candidate

ETH_P_ALL = 0x0003
RCVBUF = 4 * 1024 * 1024
MAX_PAYLOAD_READ = 65535


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
    """A cooked AF_PACKET socket on one interface with the SPA BPF filter in the kernel."""

    def __init__(self, ifname: str, protos, lo: int, hi: int, any_direction: bool = False) -> None:
        self.ifname = ifname
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        try:
            # Filter first, then bind: no unfiltered packet can be queued in between.
            bpf.attach(self.sock, bpf.compile_filter(protos, lo, hi, any_direction))
            _big_rcvbuf(self.sock)
            self.sock.bind((ifname, ETH_P_ALL))
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        self.any_direction = any_direction

    def fileno(self):
        return self.sock.fileno()

    def read_batch(self, max_n: int):
        out = []
        for _ in range(max_n):
            try:
                data, addr = self.sock.recvfrom(MAX_PAYLOAD_READ)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.ENETDOWN):
                    break
                raise
            if not self.any_direction and addr[2] == socket.PACKET_OUTGOING:
                continue
            c = frames.parse_ip(data, time.time())
            if c is not None:
                out.append(c)
        return out

    def close(self) -> None:
        self.sock.close()


class UdpSource:
    """Plain UDP sockets (IPv4 and IPv6) on the SPA port; they never send anything. The
    destination is recorded as 0.0.0.0 / :: as fwknopd does in UDP-server mode."""

    def __init__(self, port: int, bind4: str = "0.0.0.0", bind6: str = "::") -> None:
        self.socks = []
        errors = []
        for family, addr in ((socket.AF_INET, bind4), (socket.AF_INET6, bind6)):
            if addr is None:
                continue
            try:
                s = socket.socket(family, socket.SOCK_DGRAM)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                _big_rcvbuf(s)
                s.bind((addr, port))
                s.setblocking(False)
                self.socks.append((s, "0.0.0.0" if family == socket.AF_INET else "::"))
            except OSError as exc:
                errors.append(exc)
        if not self.socks:
            raise errors[0]
        self.port = port

    def fileno(self):
        return self.socks[0][0].fileno()

    def filenos(self):
        return [s.fileno() for s, _ in self.socks]

    def read_batch(self, max_n: int):
        out = []
        for s, dst in self.socks:
            for _ in range(max_n):
                try:
                    data, addr = s.recvfrom(MAX_PAYLOAD_READ)
                except (BlockingIOError, InterruptedError):
                    break
                out.append(Candidate(addr[0], dst, "udp", addr[1], self.port, data, time.time()))
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


def wait(sources, timeout):
    """Block until a source is readable or ``timeout`` seconds pass (None: forever)."""
    p = select.poll()
    for s in sources:
        fds = s.filenos() if hasattr(s, "filenos") else [s.fileno()]
        for fd in fds:
            p.register(fd, select.POLLIN)
    return p.poll(None if timeout is None else int(timeout * 1000) + 1)
