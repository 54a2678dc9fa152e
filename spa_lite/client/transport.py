"""Send SPA wire text over UDP (default), TCP or HTTP, to an IPv4 or IPv6 server.

One datagram (or one TCP write) holding exactly the base64 text: no newline, nothing else.
"""

import socket

from spa_lite import __version__
from spa_lite.errors import NetworkError

SEND_TIMEOUT = 5.0
DEFAULT_USER_AGENT = "Fwknop/spa-lite-" + __version__  # fwknopd 2.6.10 requires "Fwknop"


def resolve(host: str, port: int, socktype: int, family: int = socket.AF_UNSPEC):
    """First (family, sockaddr) for host:port; of one family when asked (-4/-6,
    SERVER_RESOLVE_IPV4)."""
    try:
        infos = socket.getaddrinfo(host, port, family, socktype)
    except (socket.gaierror, UnicodeError) as exc:
        raise NetworkError("cannot resolve %s: %s" % (host, getattr(exc, "strerror", exc)))
    if not infos:
        raise NetworkError("cannot resolve %s" % host)
    return infos[0][0], infos[0][4]


def http_request(wire: str, host: str, user_agent=None) -> bytes:
    """fwknop's SPA-over-HTTP request: ``GET /<spa with + -> -, / -> _>``."""
    path = wire.replace("+", "-").replace("/", "_")
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host
    return ("GET /%s HTTP/1.1\r\nUser-Agent: %s\r\nAccept: */*\r\nHost: %s\r\n"
            "Connection: close\r\n\r\n" % (path, user_agent or DEFAULT_USER_AGENT, host)).encode()


def send(wire: str, host: str, port: int, proto: str = "udp", source_port=None,
         family: int = socket.AF_UNSPEC, user_agent=None, timeout: float = SEND_TIMEOUT):
    """Send one SPA packet; returns the (address, port) it went to. Raises NetworkError."""
    stype = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    family, addr = resolve(host, port, stype, family)
    payload = wire.encode() if proto != "http" else http_request(wire, host, user_agent)
    sock = None
    try:
        sock = socket.socket(family, stype)
        sock.settimeout(timeout)
        if source_port:
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", source_port))
        if proto == "udp":
            sent = sock.sendto(payload, addr)
        else:
            sock.connect(addr)
            sock.sendall(payload)
            sent = len(payload)
        if sent != len(payload):
            raise NetworkError("short send to %s port %d" % (addr[0], port))
    except OSError as exc:
        raise NetworkError("cannot send to %s %s/%d: %s"
                           % (addr[0], proto, port, exc.strerror or exc))
    finally:
        if sock is not None:
            sock.close()
    return addr[0], addr[1]
