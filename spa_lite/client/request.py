"""Turn fwknop-style settings (command line over rc stanza over [default]) into one SPA
request: the SpaMessage plus everything needed to encrypt and send it.

Randomness and time come in as arguments, so a request is reproducible in tests. Every
error names the option or rc-file line the bad value came from.
"""

import os

from spa_lite import textfile
from spa_lite.core import fields, limits
from spa_lite.core.b64 import b64decode_key
from spa_lite.core.cipher import DEFAULT_MODE, mode_name
from spa_lite.core.digests import DEFAULT_DIGEST, DEFAULT_HMAC, digest_name
from spa_lite.core.errors import SpaError
from spa_lite.core.message import SpaMessage
from spa_lite.errors import CryptoError, UsageError

PROTOS = ("udp", "tcp", "http")
RAW_PROTOS = ("udpraw", "tcpraw", "icmp")
RAND_PORT_BASE = 10000
RAND_PORT_SPAN = 55535
MAX_TIME_OFFSET = 65536


class Setting:
    """A value and where it came from (``--option`` or ``file:line``)."""

    def __init__(self, value, where: str) -> None:
        self.value = value
        self.where = where


class SendRequest:
    """Everything ``spa-lite send`` needs after option processing."""

    def __init__(self) -> None:
        self.message = None          # SpaMessage
        self.destination = None
        self.port = limits.DEFAULT_SPA_PORT
        self.proto = "udp"
        self.source_port = None
        self.key = b""
        self.hmac_key = None
        self.mode = DEFAULT_MODE
        self.hmac_type = DEFAULT_HMAC
        self.user_agent = None
        self.resolve_ipv4 = False
        self.allow_ip = None         # the address the knock asks to open for
        self.notes = []              # human notes such as a randomly assigned port
        self.gpg = None              # client.gpgsend.GpgSend for a GnuPG packet


def parse_bool(s: Setting) -> bool:
    v = str(s.value).strip().upper()
    if v in ("Y", "YES", "1", "TRUE", "ON"):
        return True
    if v in ("N", "NO", "0", "FALSE", "OFF"):
        return False
    raise UsageError("%s: expected Y or N, got %r" % (s.where, s.value))


def parse_port(s: Setting) -> int:
    v = str(s.value).strip()
    if not fields.is_digits(v) or not 0 < int(v) <= limits.MAX_PORT:
        raise UsageError("%s: invalid port %r (1..65535)" % (s.where, s.value))
    return int(v)


def parse_time_offset(s: Setting, sign: int) -> int:
    """fwknop's offset syntax: digits plus an optional m/h/d unit; other characters ignored."""
    text = str(s.value).strip()
    if text.startswith("-"):
        sign, text = -sign, text[1:]
    elif text.startswith("+"):
        text = text[1:]
    digits = ""
    mult = 1
    for ch in text:
        if ch.isdigit() and ch in "0123456789":
            digits += ch
        elif ch in "mM":
            mult = 60
        elif ch in "hH":
            mult = 3600
        elif ch in "dD":
            mult = 86400
    if not digits or len(digits) > 8 or int(digits) > MAX_TIME_OFFSET:
        raise UsageError("%s: invalid time offset %r (at most %d, optionally with m/h/d)"
                         % (s.where, s.value, MAX_TIME_OFFSET))
    return sign * int(digits) * mult


def parse_access(s: Setting):
    specs = [p.strip() for p in str(s.value).split(",") if p.strip()]
    if not specs:
        raise UsageError("%s: empty access list" % s.where)
    try:
        return [fields.parse_proto_port(p) for p in specs]
    except SpaError as exc:
        raise UsageError("%s: %s" % (s.where, exc))


def parse_nat(s: Setting):
    text = str(s.value).strip()
    if "," in text:
        host, _, port = text.partition(",")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        raise UsageError("%s: NAT access must be host:port or host,port" % s.where)
    nat = host + "," + port
    try:
        fields.parse_nat(nat)
    except SpaError as exc:
        raise UsageError("%s: %s" % (s.where, exc))
    return host, int(port)


def _rand_port(rand_value: str) -> int:
    return RAND_PORT_BASE + int(rand_value[:5]) % RAND_PORT_SPAN


def key_from(get, raw_var: str, b64_var: str, what: str):
    """A key given raw (KEY) or as base64 (KEY_BASE64), never both; None if neither."""
    raw, b64 = get(raw_var), get(b64_var)
    if raw is not None and b64 is not None:
        raise UsageError("%s and %s: give the %s key in one form only" % (raw.where, b64.where, what))
    if b64 is not None:
        try:
            return b64decode_key(str(b64.value), "%s: %s key" % (b64.where, what))
        except SpaError as exc:
            raise CryptoError(str(exc))
    if raw is not None:
        return str(raw.value).encode()
    return None


def default_username(environ=None) -> str:
    """fwknop's order: SPOOF_USER, LOGNAME, USER, the login name, else NO_USER."""
    env = os.environ if environ is None else environ
    for var in ("SPOOF_USER", "LOGNAME", "USER"):
        if env.get(var):
            return env[var]
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError):
        return "NO_USER"


def _from_cli(s) -> bool:
    return s is not None and s.where.startswith("-")


def choose_allow(get):
    """How the allow IP is chosen: ("ip"|"source"|"resolve", the deciding Setting).

    The command line beats the rc file; within each, an address or ``-s`` beats ``-R``
    (fwknop: "-a overrides -R"); ``ALLOW_IP resolve``, ``RESOLVE_IP_HTTPS``/``_HTTP Y``,
    ``RESOLVE_HTTP_ONLY Y`` and a ``RESOLVE_URL`` all mean resolve."""
    allow, source = get("ALLOW_IP"), get("SOURCE_IP")
    wants = [s for s in (get("RESOLVE_IP_HTTPS"), get("RESOLVE_IP_HTTP"),
                         get("RESOLVE_HTTP_ONLY")) if s is not None and parse_bool(s)]
    url = get("RESOLVE_URL")
    if url is not None:
        wants.append(url)

    def direct(pick_cli: bool):
        if source is not None and _from_cli(source) == pick_cli and parse_bool(source):
            return "source", source
        if allow is not None and _from_cli(allow) == pick_cli:
            word = str(allow.value).strip().lower()
            return {"source": "source", "resolve": "resolve"}.get(word, "ip"), allow
        return None
    for pick_cli in (True, False):
        found = direct(pick_cli)
        if found:
            return found
        asked = [w for w in wants if _from_cli(w) == pick_cli]
        if asked:
            return "resolve", asked[0]
    raise UsageError("no allow IP: use -a IP, -s (use the packet's source address), -R (ask "
                     "a web service) or ALLOW_IP in the rc stanza")


def read_key_file(s: Setting, server, what: str) -> bytes:
    """fwknop's -G/--get-key file: lines ``SERVER: key``; the last line for the -D value
    wins. The key is a passphrase (like KEY), never logged."""
    if not server:
        raise UsageError("%s: a key file is looked up by server: give -D/--destination" % s.where)
    path = str(s.value)
    try:
        lines = textfile.read_text(path).splitlines()
    except (OSError, UnicodeError) as exc:
        raise CryptoError("%s: cannot read %s key file %s: %s"
                          % (s.where, what, path, getattr(exc, "strerror", None) or exc))
    key = None
    for line in lines:
        line = line.lstrip(" \t=")
        if not line or line[0] in "#;" or not line.startswith(server + ":"):
            continue
        key = line[len(server) + 1:].lstrip(" \t=").rstrip("\r")
    if not key:
        raise CryptoError("%s: no %s key for %s (a line '%s: KEY')" % (path, what, server, server))
    return key.encode()


def pick_key(get, raw_var: str, b64_var: str, file_var: str, what: str, server):
    """The key by precedence: command line (--key-*, then -G), rc KEY/KEY_BASE64, rc
    KEY_FILE; None when none is set (then --stdin/--fd or a prompt supplies it)."""
    direct = key_from(get, raw_var, b64_var, what)
    kf = get(file_var)
    if kf is None:
        return direct
    given = get(raw_var) or get(b64_var)
    if direct is None or (_from_cli(kf) and not _from_cli(given)):
        return read_key_file(kf, server, what)
    return direct


def build_request(get, random_bytes, now: int, prompt=None, test_mode: bool = False,
                  resolve_ip=None, gpg_pw_fd=None) -> SendRequest:
    """Resolve settings via ``get(VAR) -> Setting|None`` into a SendRequest.

    ``random_bytes(n)`` supplies randomness; ``now`` is the Unix time; ``prompt(text)``
    asks for a missing key (None when there is no terminal: then a missing key is an error);
    ``resolve_ip(get)`` finds our address for -R (the only network use before sending).
    """
    req = SendRequest()

    def val(var, parse=None, default=None):
        s = get(var)
        if s is None:
            return default
        return parse(s) if parse else s.value

    # -- where to send
    req.destination = val("SPA_SERVER")
    if req.destination is not None:
        req.destination = str(req.destination).strip()
    if not req.destination and not test_mode:
        raise UsageError("no destination: use -D/--destination or SPA_SERVER in the rc stanza")
    req.port = val("SPA_SERVER_PORT", parse_port, limits.DEFAULT_SPA_PORT)
    proto = str(val("SPA_SERVER_PROTO", default="udp")).strip().lower()
    if proto in RAW_PROTOS:
        raise UsageError("%s: protocol %s (raw sockets) is not supported; use udp, tcp or http"
                         % (get("SPA_SERVER_PROTO").where, proto))
    if proto not in PROTOS:
        raise UsageError("%s: unknown protocol %r (udp, tcp or http)"
                         % (get("SPA_SERVER_PROTO").where, proto))
    req.proto = proto
    req.source_port = val("SPA_SOURCE_PORT", parse_port)
    req.resolve_ipv4 = val("SERVER_RESOLVE_IPV4", parse_bool, False)
    req.user_agent = val("HTTP_USER_AGENT")

    # -- crypto parameters
    try:
        s = get("DIGEST_TYPE")
        digest = digest_name(str(s.value)) if s else DEFAULT_DIGEST
        s = get("HMAC_DIGEST_TYPE")
        req.hmac_type = digest_name(str(s.value)) if s else DEFAULT_HMAC
        s = get("ENCRYPTION_MODE")
        req.mode = mode_name(str(s.value)) if s else DEFAULT_MODE
    except SpaError as exc:
        raise UsageError("%s: %s" % (s.where, exc))

    # -- message fields
    rand = fields.make_rand_value(random_bytes(8))
    command = val("SERVER_CMD")
    how, setting = choose_allow(get)
    if how == "source":
        allow_ip = "0.0.0.0"
    elif how == "resolve":
        if resolve_ip is None:
            raise UsageError("%s: asks for -R address resolution, which needs the network"
                             % setting.where)
        allow_ip = resolve_ip(get)
    else:
        text = str(setting.value).strip()
        try:
            allow_ip = fields.validate_allow_ip(text)
        except SpaError:
            raise UsageError("%s: invalid allow IP %r" % (setting.where, text))
    req.allow_ip = allow_ip

    timeout = val("FW_TIMEOUT")
    if timeout is not None:
        s = get("FW_TIMEOUT")
        t = str(timeout).strip()
        if not fields.is_digits(t) or int(t) > limits.MAX_CLIENT_TIMEOUT:
            raise UsageError("%s: invalid timeout %r (0..%d seconds)"
                             % (s.where, timeout, limits.MAX_CLIENT_TIMEOUT))
        timeout = int(t)

    nat_access = None
    if command is not None:
        mtype = fields.COMMAND_MSG
        text = allow_ip + "," + str(command)
        timeout = None
    else:
        access_setting = get("ACCESS")
        if access_setting is None:
            raise UsageError("no access list: use -A proto/port (e.g. -A tcp/22) or ACCESS in "
                             "the rc stanza")
        access = parse_access(access_setting)
        mtype = fields.ACCESS_MSG
        nat = get("NAT_ACCESS")
        nat_local = val("NAT_LOCAL", parse_bool, False)
        nat_rand = val("NAT_RAND_PORT", parse_bool, False)
        nat_port = val("NAT_PORT", parse_port)
        if nat is not None or nat_local:
            if len(access) != 1:
                raise UsageError("%s: NAT access takes exactly one proto/port"
                                 % access_setting.where)
            proto0, port0 = access[0]
            if nat is not None and nat_local:
                raise UsageError("use either --nat-access or --nat-local, not both")
            if nat_local:
                if not req.destination:
                    raise UsageError("--nat-local needs -D/--destination")
                mtype = fields.LOCAL_NAT_ACCESS_MSG
                nat_access = "%s,%d" % (req.destination, port0)
            else:
                host, nport = parse_nat(nat)
                mtype = fields.NAT_ACCESS_MSG
                nat_access = "%s,%d" % (host, nport)
            if nat_rand:
                nat_port = _rand_port(rand)
                rand = fields.make_rand_value(random_bytes(8))
                req.notes.append("Randomly assigned port %d on %s for access to %s"
                                 % (nat_port, req.destination or "the server", nat_access.replace(",", ":")))
            if nat_port is not None:
                access = [(proto0, nat_port)]
        elif nat_rand or nat_port is not None:
            raise UsageError("--nat-port/--nat-rand-port need --nat-access or --nat-local")
        text = allow_ip + "," + ",".join("%s/%d" % a for a in access)

    if val("RAND_PORT", parse_bool, False):
        req.port = _rand_port(rand)
        rand = fields.make_rand_value(random_bytes(8))
        req.notes.append("Randomly assigned destination port %d" % req.port)

    user_s = get("SPOOF_USER")
    username = str(user_s.value) if user_s else default_username()
    try:
        fields.validate_username(username)
    except SpaError as exc:
        raise UsageError("%s: %s" % (user_s.where if user_s else "username", exc))
    if len(username.encode()) > 48:
        raise UsageError("%s: username longer than 48 bytes cannot be decoded by fwknopd; use -U"
                         % (user_s.where if user_s else "username"))

    offset = 0
    for var, sign in (("TIME_OFFSET", 1), ("TIME_OFFSET_PLUS", 1), ("TIME_OFFSET_MINUS", -1)):
        s = get(var)
        if s is not None:
            offset += parse_time_offset(s, sign)
    ts = int(now) + offset
    if ts < 0:
        raise UsageError("time offset puts the timestamp before 1970")

    req.message = SpaMessage(rand, username, ts, mtype, text, nat_access, val("SERVER_AUTH"),
                             timeout, limits.FKO_PROTOCOL_VERSION, digest)

    # -- keys (last, so option errors are reported before any prompt)
    from spa_lite.client import gpgsend
    req.gpg = gpgsend.settings(get, prompt, gpg_pw_fd)     # None: a Rijndael packet
    req.key = pick_key(get, "KEY", "KEY_BASE64", "KEY_FILE", "encryption", req.destination)
    if req.key is None and req.gpg is None:
        if prompt is None:
            raise CryptoError("no encryption key: set KEY_BASE64 (or KEY) in the rc stanza, or "
                              "pass --key-base64-rijndael/--key-rijndael, -G FILE or --stdin")
        req.key = prompt("Enter encryption key: ").encode()
    req.hmac_key = pick_key(get, "HMAC_KEY", "HMAC_KEY_BASE64", "HMAC_KEY_FILE", "HMAC",
                            req.destination)
    use_hmac = get("USE_HMAC")
    if use_hmac is not None and not parse_bool(use_hmac):
        req.hmac_key = None
    elif use_hmac is not None and req.hmac_key is None:
        if prompt is None:
            raise CryptoError("%s: HMAC requested but no HMAC key: set HMAC_KEY_BASE64 (or "
                              "HMAC_KEY), or pass --key-base64-hmac/--key-hmac" % use_hmac.where)
        req.hmac_key = prompt("Enter HMAC key: ").encode()
    if req.mode == "legacy" and req.hmac_key is not None:
        raise UsageError("legacy encryption mode is incompatible with HMAC")
    return req
