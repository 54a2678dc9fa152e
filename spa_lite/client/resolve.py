"""``-R``: ask a web service which address the world sees us from (the allow IP of a knock
from behind NAT, CGNAT or a dynamic address).

fwknop runs wget for this; spa-lite uses the standard library (a socket and ssl), with
certificate and host-name verification always on, a CA file for a private resolver, a short
timeout, and an answer that must be exactly one IPv4 or IPv6 address. Anything else is one
line naming the URL and what was wrong, and exit 4.
"""

import re
import socket
import time

from spa_lite.core import fields
from spa_lite.core.errors import SpaError
from spa_lite.errors import NetworkError, UsageError

DEFAULT_HTTPS_URL = "https://www.cipherdyne.org/cgi-bin/myip"    # fwknop's -R default
DEFAULT_HTTP_URL = "http://www.cipherdyne.org/cgi-bin/myip"      # its --resolve-http-only
TIMEOUT = 5.0                  # seconds for the whole exchange: a cron knock must not hang
MAX_ANSWER = 4096              # bytes of body read; an address needs 45
MAX_HEADER = 8192              # bytes of HTTP header read


def parse_answer(body: bytes) -> str:
    """The one address in a resolver's answer.

    Accepted: the address alone (``203.0.113.7``), fwknop-style with trailing text on the
    line or further lines (``203.0.113.7\\n`` or ``203.0.113.7 (via proxy)``, as fwknop
    reads the leading address), or JSON ``{"ip": "..."}``. Refused: no address, more than
    one, the unspecified or a multicast address."""
    try:
        text = body.decode("ascii").strip()
    except UnicodeError:
        raise ValueError("answer is not text")
    if text.startswith("{"):
        import json
        try:
            obj = json.loads(text)
            text = str(obj.get("ip") or obj.get("address") or "")
        except (ValueError, AttributeError):
            raise ValueError("answer is not JSON with an \"ip\" member")
    tokens = text.split()
    if not tokens:
        raise ValueError("empty answer")
    first = tokens[0].strip("[]")
    if not _is_ip(first):
        raise ValueError("answer does not start with an IP address: %r" % _clip(text))
    others = [t for t in tokens[1:] if _is_ip(t.strip("[](),;\"'"))]
    if others:
        raise ValueError("answer holds more than one address: %r" % _clip(text))
    import ipaddress
    addr = ipaddress.ip_address(first)
    if addr.is_unspecified or addr.is_multicast or addr.is_reserved and addr.version == 4:
        raise ValueError("answer %s is not a usable allow IP" % first)
    return first


def _is_ip(text: str) -> bool:
    try:
        fields.validate_allow_ip(text)
        return True
    except SpaError:
        return False


def _clip(text: str) -> str:
    text = "".join(c if " " <= c < "\x7f" else "?" for c in text)
    return text if len(text) <= 60 else text[:57] + "..."


URL_RE = re.compile(r"^(?i:(https?))://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?"
                    r"([/?][!-~]*)?$")


def split_url(url: str):
    """(scheme, host, port, path) of an http(s) URL; UsageError naming it otherwise."""
    m = URL_RE.match(url.strip())
    if not m or (m.group(3) and not 0 < int(m.group(3)) <= 65535):
        raise UsageError("resolver URL %r: must be https://HOST[:PORT]/PATH" % url)
    scheme = m.group(1).lower()
    path = m.group(4) or "/"
    return (scheme, m.group(2).strip("[]"), int(m.group(3) or (443 if scheme == "https" else 80)),
            path if path.startswith("/") else "/" + path)


def resolve_external_ip(url: str, family: int = socket.AF_UNSPEC, cafile=None,
                        timeout: float = TIMEOUT, user_agent=None) -> str:
    """GET ``url`` and return the address in its answer; NetworkError (exit 4) otherwise.
    ``family`` (AF_INET/AF_INET6) picks which of our addresses the resolver gets to see."""
    scheme, host, port, path = split_url(url)
    ctx = _tls_context(cafile) if scheme == "https" else None
    try:
        status, body = _get(host, port, path, family, ctx, timeout, user_agent or _agent())
    except socket.timeout:
        raise NetworkError("cannot resolve our address via %s: no answer within %g s"
                           % (url, timeout))
    except OSError as exc:
        verify = getattr(exc, "verify_message", None)
        if verify:
            raise NetworkError("cannot resolve our address via %s: certificate not trusted (%s)%s"
                               % (url, verify, "" if cafile else
                                  "; a private resolver needs --resolve-ca-file"))
        raise NetworkError("cannot resolve our address via %s: %s"
                           % (url, getattr(exc, "strerror", None) or str(exc) or type(exc).__name__))
    if status != 200:
        raise NetworkError("cannot resolve our address via %s: HTTP status %d" % (url, status))
    try:
        return parse_answer(body)
    except ValueError as exc:
        raise NetworkError("cannot resolve our address via %s: %s" % (url, exc))


def _tls_context(cafile):
    """Certificate and host-name checks on. ``ssl`` is imported here only: OpenWrt ships it
    apart from python3-light (python3-openssl), and only -R over HTTPS needs it."""
    try:
        import ssl
    except ImportError:
        raise UsageError("-R over HTTPS needs Python's ssl module (OpenWrt: opkg install "
                         "python3-openssl)")
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError("%s: cannot load CA file: %s" % (cafile, getattr(exc, "strerror", None) or exc))


def _get(host, port, path, family, ctx, timeout, user_agent):
    """One HTTP/1.0 GET (no chunked encoding, the server closes): (status, body). The whole
    exchange shares one deadline. Plain sockets rather than http.client or urllib, which
    OpenWrt splits out of python3-light."""
    deadline = time.monotonic() + timeout

    def left():
        rest = deadline - time.monotonic()
        if rest <= 0:
            raise socket.timeout("timed out")
        return rest
    sock = _connect((host, port), left(), family)
    try:
        if ctx is not None:
            sock.settimeout(left())
            sock = ctx.wrap_socket(sock, server_hostname=host)
        name = "[%s]" % host if ":" in host else host
        sock.settimeout(left())
        sock.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\n"
                      "Connection: close\r\n\r\n" % (path, name, user_agent)).encode())
        data = b""
        while len(data) <= MAX_HEADER + MAX_ANSWER:
            sock.settimeout(left())
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise OSError("no HTTP answer")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not status[0].startswith(b"HTTP/") or not status[1].isdigit():
        raise OSError("not an HTTP answer")
    if len(body) > MAX_ANSWER:
        raise OSError("answer longer than %d bytes" % MAX_ANSWER)
    return int(status[1]), body


def _agent() -> str:
    from spa_lite.client.transport import DEFAULT_USER_AGENT
    return DEFAULT_USER_AGENT


def _connect(addr, timeout, family):
    """socket.create_connection restricted to one address family (for -4/-6)."""
    host, port = addr
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError("cannot resolve %s: %s" % (host, exc.strerror))
    err = None
    for fam, stype, proto, _, sa in infos:
        s = socket.socket(fam, stype, proto)
        s.settimeout(timeout)
        try:
            s.connect(sa)
            return s
        except OSError as exc:
            err = exc
            s.close()
    raise err or OSError("no %s address for %s" % (
        {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}.get(family, "usable"), host))
