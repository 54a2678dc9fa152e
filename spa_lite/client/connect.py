"""``spa-lite connect``: knock, wait for the door to open, then be ssh's ProxyCommand.

After the knock every address of HOST is tried, IPv6 and IPv4 interleaved and staggered
(Happy Eyeballs, RFC 8305), a fresh attempt every STAGGER seconds until the bound: the
firewall rule may land just after a first SYN was dropped, and a new SYN is faster than the
kernel's retransmission (1 s, then 3 s). The first connection that completes wins. Then
stdin/stdout are relayed to it, or (``--fdpass``, ssh's ProxyUseFdpass) the connected socket
itself is handed to ssh over stdout with SCM_RIGHTS and spa-lite exits.

When nothing opens within the bound, one line says what was knocked, what stayed closed for
how long, and that the SPA server's log says why; exit 5 (ClosedError).
"""

import errno
import os
import select
import socket
import sys
import time

from spa_lite.errors import ClosedError, NetworkError, UsageError

DEFAULT_WAIT = 5.0      # seconds: a knock normally opens the door within milliseconds
STAGGER = 0.25          # seconds between connection attempts (RFC 8305's recommended delay)
MAX_PENDING = 16        # connection attempts kept in flight at once
MAX_WAIT = 300.0
RELAY_CHUNK = 65536


def addresses(host: str, port: int, family: int = socket.AF_UNSPEC):
    """[(family, sockaddr)] for host, IPv6 and IPv4 interleaved, IPv6 first."""
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise NetworkError("cannot resolve %s: %s" % (host, getattr(exc, "strerror", exc)))
    seen, v6, v4 = set(), [], []
    for fam, _, _, _, sa in infos:
        if sa[:2] in seen:
            continue
        seen.add(sa[:2])
        (v6 if fam == socket.AF_INET6 else v4).append((fam, sa))
    out = []
    for i in range(max(len(v6), len(v4))):
        out += v6[i:i + 1] + v4[i:i + 1]
    if not out:
        raise NetworkError("cannot resolve %s" % host)
    return out


def open_connection(addrs, wait: float):
    """The first TCP connection to any of ``addrs`` within ``wait`` seconds:
    (socket, sockaddr). Otherwise ({address: last failure}, None)."""
    deadline = time.monotonic() + wait
    pending = []                    # [(socket, sockaddr)] in start order
    failures = {}
    i, next_start = 0, time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_start:
                fam, sa = addrs[i % len(addrs)]
                i += 1
                next_start = now + STAGGER
                s = socket.socket(fam, socket.SOCK_STREAM)
                s.setblocking(False)
                rc = s.connect_ex(sa)
                if rc == 0:
                    return s, sa
                if rc in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
                    pending.append((s, sa))
                    if len(pending) > MAX_PENDING:
                        pending.pop(0)[0].close()
                else:
                    failures[sa[0]] = os.strerror(rc)
                    s.close()
            wait_for = max(0.0, min(next_start, deadline) - time.monotonic())
            _, ready, _ = select.select([], [p[0] for p in pending], [], wait_for)
            for s in ready:
                sa = next(p[1] for p in pending if p[0] is s)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                pending = [p for p in pending if p[0] is not s]
                if err == 0:
                    return s, sa
                failures[sa[0]] = os.strerror(err)
                s.close()
        for _, sa in pending:
            failures.setdefault(sa[0], "no answer (packets dropped)")
        for fam, sa in addrs:
            failures.setdefault(sa[0], "no answer (packets dropped)")
        return failures, None
    finally:
        for s, _ in pending:
            s.close()


def _bound(args) -> float:
    wait = DEFAULT_WAIT if args.wait is None else args.wait
    if not 0 < wait <= MAX_WAIT:
        raise UsageError("--wait: must be more than 0 and at most %d seconds" % MAX_WAIT)
    return wait


def door(args, req, sent_to, host: str, port: int):
    """Connect to host:port after a knock, or raise ClosedError with the one-line story."""
    wait = _bound(args)
    from spa_lite.client.commands import _family
    addrs = addresses(host, port, _family(args))
    started = time.monotonic()
    sock, sa = open_connection(addrs, wait)
    if sa is not None:
        sock.setblocking(True)
        if args.verbose:
            sys.stderr.write("[+] %s port %d open after %.2f s (%s)\n"
                             % (host, port, time.monotonic() - started, sa[0]))
        return sock
    failures = sock
    what = ", ".join("%s: %s" % (a, r) for a, r in failures.items())
    stanza = " (stanza %s)" % args.named_config if args.named_config else ""
    allow = "its source address" if req.allow_ip in ("0.0.0.0", "::") else req.allow_ip
    raise ClosedError(
        "knocked %s %s/%d%s asking %s for %s, but %s port %d stayed closed for %.1f s (%s); "
        "the SPA server's log says why (a wrong key, clock skew, a replay, a source or port "
        "not allowed): journalctl -t spa-lite, or logread -e spa-lite on OpenWrt, or "
        "fwknopd's syslog" % (req.destination, req.proto, sent_to[1], stanza,
                              ",".join("%s/%d" % a for a in _access(req)) or "access", allow,
                              host, port, wait, what))


def _access(req):
    from spa_lite.core import fields
    text = req.message.message
    if req.message.message_type == fields.COMMAND_MSG:
        return []
    try:
        return fields.parse_access(text)[1]
    except Exception:
        return []


def wait_open(args, req, sent_to) -> None:
    """``send --wait-open [tcp/]PORT``: the door probe without a relay."""
    spec = str(args.wait_open).strip().lower()
    if spec.startswith("tcp/"):
        spec = spec[4:]
    if not spec.isdigit() or not 0 < int(spec) <= 65535:
        raise UsageError("--wait-open: expected tcp/PORT or PORT (only TCP can be seen to "
                         "open), got %r" % args.wait_open)
    sock = door(args, req, sent_to, req.destination, int(spec))
    sock.close()
    if not args.quiet:
        sys.stderr.write("[+] %s tcp/%s is open\n" % (req.destination, spec))


def relay(sock, fd_in: int = 0, fd_out: int = 1) -> None:
    """Copy fd_in -> sock and sock -> fd_out until the server closes (ssh's ProxyCommand
    talks over these pipes). A closed stdin half-closes the connection."""
    try:
        _pump(sock, fd_in, fd_out)
    except (BrokenPipeError, ConnectionResetError):
        pass                         # ssh went away, or the server reset: nothing to say


def _pump(sock, fd_in: int, fd_out: int) -> None:
    readers = [fd_in, sock]
    while sock in readers:
        ready, _, _ = select.select(readers, [], [])
        if fd_in in ready:
            data = os.read(fd_in, RELAY_CHUNK)
            if data:
                sock.sendall(data)
            else:
                readers.remove(fd_in)
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        if sock in ready:
            data = sock.recv(RELAY_CHUNK)
            if not data:
                break
            view = memoryview(data)
            while view:
                view = view[os.write(fd_out, view):]


def pass_fd(sock, fd_out: int = 1) -> None:
    """ProxyUseFdpass: send the connected socket over stdout (a Unix socket) to ssh."""
    try:
        out = socket.socket(fileno=os.dup(fd_out))
    except OSError as exc:
        raise UsageError("--fdpass: stdout is not a socket (%s); use it only with ssh's "
                         "ProxyUseFdpass yes" % (exc.strerror or exc))
    try:
        if out.family != socket.AF_UNIX:
            raise UsageError("--fdpass: stdout is not a Unix socket; use it only with ssh's "
                             "ProxyUseFdpass yes")
        if hasattr(socket, "send_fds"):
            socket.send_fds(out, [b"\0"], [sock.fileno()])
        else:                        # Python < 3.9
            import array
            out.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                   array.array("i", [sock.fileno()]))])
    finally:
        out.close()


def cmd_connect(args) -> int:
    from spa_lite.client.commands import SEND_OPTIONS, knock, load_settings
    from spa_lite.client.request import Setting
    port = str(args.port).strip()
    if not port.isdigit() or not 0 < int(port) <= 65535:
        raise UsageError("PORT: expected 1..65535, got %r" % args.port)
    if getattr(args, "stdin", False):
        raise UsageError("--stdin: stdin is the connection here; use --fd N or -G FILE")
    _bound(args)
    get = load_settings(args, SEND_OPTIONS)
    defaults = {"SPA_SERVER": Setting(args.host, "HOST"),
                "ACCESS": Setting("tcp/" + port, "PORT")}

    def get_or_default(var):
        s = get(var)
        return s if s is not None else defaults.get(var)
    req, _, sent_to = knock(args, get_or_default)
    sock = door(args, req, sent_to, args.host, int(port))
    try:
        if args.fdpass:
            pass_fd(sock)
        else:
            relay(sock)
    finally:
        sock.close()
    return 0
