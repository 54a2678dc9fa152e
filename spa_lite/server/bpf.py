"""Classic BPF filters, so the kernel drops what cannot be SPA data before Python wakes.

``compile_filter`` is for cooked packet sockets (the program starts at the IP header): keep
only IPv4/IPv6 UDP or TCP packets to the SPA port range, coming in (not outgoing), and not
IPv4 fragments. ``compile_udp_filter`` is for the UDP-server sockets (the program starts at
the UDP header; the socket already chose the port).

With ``payload`` (see payload_check), both also look at the payload: its length must be one
that some configured stanza can produce (lengths.py), its first bytes must be base64 text
and the very first one what such a stanza's data starts with (``8 9 + /`` for Rijndael),
unless SPA over HTTP is on and it starts with ``GET `` (any case). A port scan or a
random UDP flood then never leaves the kernel. IPv6 extension headers are not followed:
such packets are dropped here (SPA clients never send them). Everything else is left to
Python (frames.py, policy.precheck), which re-checks what it parses.
"""

from array import array
import socket
import struct

from spa_lite.server import lengths

SO_ATTACH_FILTER = 26
SKF_AD_PKTTYPE = 0xFFFFF000 + 4     # ancillary load: skb->pkt_type
PACKET_OUTGOING = 4

LD_W_ABS, LD_H_ABS, LD_B_ABS = 0x20, 0x28, 0x30
LD_W_IND, LD_H_IND, LD_B_IND = 0x40, 0x48, 0x50
LD_MEM, LD_LEN = 0x60, 0x80
LDX_IMM, LDX_MEM, LDX_MSH = 0x01, 0x61, 0xB1
ST = 0x02
ADD_K, SUB_K, SUB_X, MUL_K, AND_K, RSH_K, ADD_X = 0x04, 0x14, 0x1C, 0x24, 0x54, 0x74, 0x0C
TAX, TXA = 0x07, 0x87
JA, JEQ, JGE, JGT, JSET = 0x05, 0x15, 0x35, 0x25, 0x45
RET_K = 0x06
ACCEPT_LEN = 0x40000
M_LEN, M_OFF = 0, 1                 # scratch memory: payload length, payload offset
B64_CHECKED = 4                     # leading payload bytes that must be base64 text


def payload_check(stanzas, http: bool = False) -> tuple:
    """What the payload part of a program checks: (length rules, SPA over HTTP allowed)."""
    return (lengths.payload_rules(stanzas), bool(http))


class _Asm:
    """Instructions with symbolic jump targets, resolved to the 8-bit offsets BPF uses."""

    def __init__(self) -> None:
        self.prog = []
        self.labels = {}

    def emit(self, code, k=0, jt=None, jf=None) -> None:
        self.prog.append((code, jt, jf, k))

    def label(self, name) -> None:
        self.labels[name] = len(self.prog)

    def assemble(self) -> list:
        out = []
        for pc, (code, jt, jf, k) in enumerate(self.prog):
            def off(target):
                if target is None:
                    return 0
                d = self.labels[target] - pc - 1
                if not 0 <= d <= 255:
                    raise ValueError("BPF jump of %d instructions" % d)
                return d
            if code == JA:                 # unconditional: the offset is k
                out.append((code, 0, 0, off(k)))
            else:
                out.append((code, off(jt), off(jf), k & 0xFFFFFFFF))
        return out


def _payload_part(a: _Asm, payload) -> None:
    """Label "payload": X holds the payload offset, M[M_LEN] its length."""
    rules, http = payload
    a.label("payload")
    if http:                                   # "GET " in any case: SPA over HTTP
        a.emit(LD_W_IND, 0)
        a.emit(AND_K, 0xDFDFDFFF)
        a.emit(JEQ, 0x47455420, "accept", None)
    for i in range(B64_CHECKED):               # A-Z a-z 0-9 + /
        nxt = "b64_%d" % (i + 1)
        a.emit(LD_B_IND, i)
        a.emit(JGE, 0x61, None, "lt_a%d" % i)
        a.emit(JGT, 0x7A, "drop", nxt)
        a.label("lt_a%d" % i)
        a.emit(JGE, 0x41, None, "lt_A%d" % i)
        a.emit(JGT, 0x5A, "drop", nxt)
        a.label("lt_A%d" % i)
        a.emit(JGE, 0x30, None, "lt_0%d" % i)
        a.emit(JGT, 0x39, "drop", nxt)
        a.label("lt_0%d" % i)
        a.emit(JEQ, 0x2B, nxt, None)
        a.emit(JEQ, 0x2F, nxt, "drop")
        a.label(nxt)
    for i, (lo, hi, offset, first) in enumerate(rules):
        nxt = "rule_%d" % (i + 1)
        ok = "first_%d" % i if first else "accept"
        a.emit(LD_MEM, M_LEN)
        a.emit(JGE, lo, None, nxt)
        if offset is None:
            a.emit(JGT, hi, nxt, ok)
        else:
            a.emit(JGT, hi, nxt, None)
            a.emit(ADD_K if offset >= 0 else SUB_K, abs(offset))
            a.emit(MUL_K, 3)
            a.emit(AND_K, 63)
            a.emit(JGT, 2, nxt, ok)
        if first:                              # the first byte: one of a few characters
            a.label(ok)
            a.emit(LD_B_IND, 0)
            for j, ch in enumerate(first):
                a.emit(JEQ, ch, "accept", nxt if j == len(first) - 1 else None)
        a.label(nxt)
    a.emit(JA, "drop")


def _ends(a: _Asm) -> list:
    a.label("accept")
    a.emit(RET_K, ACCEPT_LEN)
    a.label("drop")
    a.emit(RET_K, 0)
    return a.assemble()


def compile_filter(protos, lo: int, hi: int, any_direction: bool = False,
                   payload=None) -> list:
    """[(code, jt, jf, k)] for the given protocol names ("udp", "tcp") and port range; with
    ``payload`` (payload_check), the payload checks too."""
    protos = set(protos)
    numbers = [n for name, n in (("udp", 17), ("tcp", 6)) if name in protos]
    a = _Asm()
    emit = a.emit
    ok4 = "v4payload" if payload is not None else "accept"
    ok6 = "v6payload" if payload is not None else "accept"
    if not any_direction:
        emit(LD_W_ABS, SKF_AD_PKTTYPE)
        emit(JEQ, PACKET_OUTGOING, "drop", None)
    emit(LD_B_ABS, 0)
    emit(AND_K, 0xF0)
    emit(JEQ, 0x40, None, "v6")
    # IPv4: protocol, no fragments, then the port after the variable-length header
    emit(LD_B_ABS, 9)
    for i, n in enumerate(numbers):
        emit(JEQ, n, "v4frag", "drop" if i == len(numbers) - 1 else None)
    a.label("v4frag")
    emit(LD_H_ABS, 6)
    emit(JSET, 0x3FFF, "drop", None)
    emit(LDX_MSH, 0)
    emit(LD_H_IND, 2)
    emit(JGE, lo, None, "drop")
    emit(JGT, hi, "drop", ok4)
    a.label("v6")
    emit(JEQ, 0x60, None, "drop")
    emit(LD_B_ABS, 6)
    for i, n in enumerate(numbers):
        emit(JEQ, n, "v6port", "drop" if i == len(numbers) - 1 else None)
    a.label("v6port")
    emit(LD_H_ABS, 42)
    emit(JGE, lo, None, "drop")
    emit(JGT, hi, "drop", ok6)
    if payload is not None:
        # IPv4 (X = IP header length): UDP length field, or total length minus both headers
        a.label("v4payload")
        emit(LD_B_ABS, 9)
        emit(JEQ, 17, None, "v4tcp")
        emit(LD_H_IND, 4)
        emit(SUB_K, 8)
        emit(ST, M_LEN)
        emit(TXA)
        emit(ADD_K, 8)
        emit(TAX)
        emit(JA, "payload")
        a.label("v4tcp")
        emit(LD_B_IND, 12)
        emit(RSH_K, 2)
        emit(AND_K, 0x3C)
        emit(ADD_X)
        emit(ST, M_OFF)
        emit(LD_H_ABS, 2)
        emit(LDX_MEM, M_OFF)
        emit(SUB_X)
        emit(ST, M_LEN)
        emit(JA, "payload")
        # IPv6: fixed 40-byte header (no extension headers reach here)
        a.label("v6payload")
        emit(LD_B_ABS, 6)
        emit(JEQ, 17, None, "v6tcp")
        emit(LD_H_ABS, 44)
        emit(SUB_K, 8)
        emit(ST, M_LEN)
        emit(LDX_IMM, 48)
        emit(JA, "payload")
        a.label("v6tcp")
        emit(LD_B_ABS, 52)
        emit(RSH_K, 2)
        emit(AND_K, 0x3C)
        emit(ADD_K, 40)
        emit(TAX)
        emit(LD_H_ABS, 4)
        emit(ADD_K, 40)
        emit(SUB_X)
        emit(ST, M_LEN)
        _payload_part(a, payload)
    return _ends(a)


def compile_udp_filter(payload) -> list:
    """The payload checks for a UDP socket, whose filter sees the datagram from its UDP
    header (the socket has chosen address and port already)."""
    a = _Asm()
    a.emit(LD_LEN)
    a.emit(SUB_K, 8)
    a.emit(ST, M_LEN)
    a.emit(LDX_IMM, 8)
    _payload_part(a, payload)
    return _ends(a)


def pack(program) -> bytes:
    return b"".join(struct.pack("HBBI", c, jt, jf, k) for c, jt, jf, k in program)


def attach(sock: socket.socket, program) -> None:
    """Attach the program to a socket (SO_ATTACH_FILTER); attaching again replaces it
    atomically, so a reload never lets an unfiltered packet through.

    struct sock_fprog is {unsigned short len; struct sock_filter *filter}: the pointer is the
    address of an ``array`` buffer (buffer_info), so no ctypes is needed; OpenWrt ships ctypes
    in a separate package (python3-ctypes) that python3-light does not include.
    """
    buf = array("B", pack(program))
    fprog = struct.pack("@HP", len(program), buf.buffer_info()[0])
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    del buf                       # kept alive until the kernel has copied the program


def run(program, packet: bytes, pkttype: int = 0) -> int:
    """A userspace interpreter for the instructions this module emits (for tests); it
    follows the kernel: 32-bit arithmetic, out-of-bounds loads drop the packet."""
    a = x = 0
    mem = [0] * 16
    pc = 0
    for _ in range(len(program) + 1):
        code, jt, jf, k = program[pc]
        pc += 1
        try:
            if code == LD_W_ABS:
                a = pkttype if k == SKF_AD_PKTTYPE else struct.unpack_from("!I", packet, k)[0]
            elif code == LD_H_ABS:
                a = struct.unpack_from("!H", packet, k)[0]
            elif code == LD_B_ABS:
                a = packet[k]
            elif code == LD_W_IND:
                a = struct.unpack_from("!I", packet, x + k)[0]
            elif code == LD_H_IND:
                a = struct.unpack_from("!H", packet, x + k)[0]
            elif code == LD_B_IND:
                a = packet[x + k]
            elif code == LD_MEM:
                a = mem[k]
            elif code == LD_LEN:
                a = len(packet)
            elif code == LDX_IMM:
                x = k
            elif code == LDX_MEM:
                x = mem[k]
            elif code == LDX_MSH:
                x = (packet[k] & 0x0F) * 4
            elif code == ST:
                mem[k] = a
            elif code == TAX:
                x = a
            elif code == TXA:
                a = x
            elif code in (ADD_K, SUB_K, MUL_K, AND_K, RSH_K, ADD_X, SUB_X):
                a = {ADD_K: a + k, SUB_K: a - k, MUL_K: a * k, AND_K: a & k, RSH_K: a >> k,
                     ADD_X: a + x, SUB_X: a - x}[code] & 0xFFFFFFFF
            elif code == JA:
                pc += k
            elif code in (JEQ, JGE, JGT, JSET):
                cond = {JEQ: a == k, JGE: a >= k, JGT: a > k, JSET: bool(a & k)}[code]
                pc += jt if cond else jf
            elif code == RET_K:
                return k
            else:
                raise ValueError("unknown opcode %#x" % code)
        except (IndexError, struct.error):
            return 0                      # the kernel drops packets that read out of bounds
    raise ValueError("program did not return")
