"""``-R``: ask a web service which address the world sees us from (the allow IP of a knock
from behind NAT, CGNAT or a dynamic address).

fwknop runs wget for this; spa-lite uses the standard library (http.client and ssl), with
certificate and host-name verification always on, a CA file for a private resolver, a short
timeout, and an answer that must be exactly one IPv4 or IPv6 address. Anything else is one
line naming the URL and what was wrong, and exit 4.
"""

import socket
import ssl

from spa_lite.core import fields
from spa_lite.core.errors import SpaError
from spa_lite.errors import NetworkError, UsageError

DEFAULT_HTTPS_URL = "https://www.cipherdyne.org/cgi-bin/myip"    # fwknop's -R default
DEFAULT_HTTP_URL = "http://www.cipherdyne.org/cgi-bin/myip"      # its --resolve-http-only
TIMEOUT = 5.0                  # seconds for the whole exchange: a cron knock must not hang
MAX_ANSWER = 4096              # bytes of body read; an address needs 45


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


def resolve_external_ip(url: str, family: int = socket.AF_UNSPEC, cafile=None,
                        timeout: float = TIMEOUT, user_agent=None) -> str:
    """GET ``url`` and return the address in its answer; NetworkError (exit 4) otherwise.
    ``family`` (AF_INET/AF_INET6) picks which of our addresses the resolver gets to see."""
    import http.client
    from urllib.parse import urlsplit
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError("resolver URL %r: %s" % (url, exc))
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        raise UsageError("resolver URL %r: must be https://HOST[:PORT]/PATH" % url)
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    if scheme == "https":
        try:
            ctx = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError("%s: cannot load CA file: %s" % (cafile, getattr(exc, "strerror", None) or exc))
        conn = http.client.HTTPSConnection(parts.hostname, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
    conn._create_connection = lambda addr, t, src=None: _connect(addr, t, family)
    try:
        conn.request("GET", path, headers={"User-Agent": user_agent or _agent(),
                                           "Accept": "*/*", "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(MAX_ANSWER + 1)
        status = resp.status
    except ssl.SSLCertVerificationError as exc:
        raise NetworkError("cannot resolve our address via %s: certificate not trusted (%s)%s"
                           % (url, exc.verify_message or exc.reason,
                              "" if cafile else "; a private resolver needs --resolve-ca-file"))
    except socket.timeout:
        raise NetworkError("cannot resolve our address via %s: no answer within %g s"
                           % (url, timeout))
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        raise NetworkError("cannot resolve our address via %s: %s"
                           % (url, getattr(exc, "strerror", None) or str(exc) or type(exc).__name__))
    finally:
        conn.close()
    if status != 200:
        raise NetworkError("cannot resolve our address via %s: HTTP status %d" % (url, status))
    if len(body) > MAX_ANSWER:
        raise NetworkError("cannot resolve our address via %s: answer longer than %d bytes"
                           % (url, MAX_ANSWER))
    try:
        return parse_answer(body)
    except ValueError as exc:
        raise NetworkError("cannot resolve our address via %s: %s" % (url, exc))


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
