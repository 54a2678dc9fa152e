"""Classic BPF filter for cooked packet sockets: in the kernel, keep only IPv4/IPv6 UDP or
TCP packets to the SPA port range, coming in (not outgoing), and not IPv4 fragments.

The program starts at the IP header (SOCK_DGRAM). IPv6 extension headers are not followed in
the kernel: such packets are dropped there (SPA clients never send them). Everything else
is left to Python (frames.py), which re-checks what it parses.
"""

from array import array
import socket
import struct

SO_ATTACH_FILTER = 26
SKF_AD_PKTTYPE = 0xFFFFF000 + 4     # ancillary load: skb->pkt_type
PACKET_OUTGOING = 4

LD_W_ABS, LD_H_ABS, LD_B_ABS = 0x20, 0x28, 0x30
LD_H_IND = 0x48
LDX_MSH = 0xB1
ALU_AND_K = 0x54
JEQ, JGE, JGT, JSET = 0x15, 0x35, 0x25, 0x45
RET_K = 0x06
ACCEPT_LEN = 0x40000


def compile_filter(protos, lo: int, hi: int, any_direction: bool = False) -> list:
    """[(code, jt, jf, k)] for the given protocol names ("udp", "tcp") and port range."""
    protos = set(protos)
    numbers = [n for name, n in (("udp", 17), ("tcp", 6)) if name in protos]
    prog = []            # (code, jt-label, jf-label, k); labels: int offsets resolved below
    labels = {}

    def emit(code, k=0, jt=None, jf=None):
        prog.append([code, jt, jf, k])

    def label(name):
        labels[name] = len(prog)

    if not any_direction:
        emit(LD_W_ABS, SKF_AD_PKTTYPE)
        emit(JEQ, PACKET_OUTGOING, "drop", None)
    emit(LD_B_ABS, 0)
    emit(ALU_AND_K, 0xF0)
    emit(JEQ, 0x40, None, "v6")
    # IPv4: protocol, no fragments, then the port after the variable-length header
    emit(LD_B_ABS, 9)
    for i, n in enumerate(numbers):
        emit(JEQ, n, "v4frag", "drop" if i == len(numbers) - 1 else None)
    label("v4frag")
    emit(LD_H_ABS, 6)
    emit(JSET, 0x3FFF, "drop", None)
    emit(LDX_MSH, 0)
    emit(LD_H_IND, 2)
    emit(JGE, lo, None, "drop")
    emit(JGT, hi, "drop", "accept")
    label("v6")
    emit(JEQ, 0x60, None, "drop")
    emit(LD_B_ABS, 6)
    for i, n in enumerate(numbers):
        emit(JEQ, n, "v6port", "drop" if i == len(numbers) - 1 else None)
    label("v6port")
    emit(LD_H_ABS, 42)
    emit(JGE, lo, None, "drop")
    emit(JGT, hi, "drop", "accept")
    label("accept")
    emit(RET_K, ACCEPT_LEN)
    label("drop")
    emit(RET_K, 0)
    out = []
    for pc, (code, jt, jf, k) in enumerate(prog):
        def off(target):
            if target is None:
                return 0
            return labels[target] - pc - 1
        out.append((code, off(jt), off(jf), k))
    return out


def pack(program) -> bytes:
    return b"".join(struct.pack("HBBI", c, jt, jf, k) for c, jt, jf, k in program)


def attach(sock: socket.socket, program) -> None:
    """Attach the program to a socket (SO_ATTACH_FILTER).

    struct sock_fprog is {unsigned short len; struct sock_filter *filter}: the pointer is the
    address of an ``array`` buffer (buffer_info), so no ctypes is needed; OpenWrt ships ctypes
    in a separate package (python3-ctypes) that python3-light does not include.
    """
    buf = array("B", pack(program))
    fprog = struct.pack("@HP", len(program), buf.buffer_info()[0])
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    del buf                       # kept alive until the kernel has copied the program


def run(program, packet: bytes, pkttype: int = 0) -> int:
    """A userspace interpreter for the instructions compile_filter emits (for tests)."""
    a = x = 0
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
            elif code == LD_H_IND:
                a = struct.unpack_from("!H", packet, x + k)[0]
            elif code == LDX_MSH:
                x = (packet[k] & 0x0F) * 4
            elif code == ALU_AND_K:
                a &= k
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
