"""fwknopd.conf and access.conf, read the way fwknopd 2.6 reads them, into one Settings object.

Line format (both files): ``KEYWORD value``; a line whose first non-blank character is '#'
or ';' is a comment; a trailing ':' on the keyword is dropped; the value ends at ';' or the
end of the line, trailing blanks removed. fwknopd.conf values starting with ``$VAR`` expand.
access.conf: each ``SOURCE`` starts a stanza; ``%include FILE``, ``%include_folder DIR``
(its ``*.conf`` files, sorted) and, inside a stanza, ``%include_keys FILE`` (key variables
only) work as in fwknopd, nesting at most 3 deep.

Every problem is reported as ``file:line: what is wrong``; hard errors raise ConfigError,
warnings (unknown keywords, loose permissions) are collected on the Settings object.
"""

import ipaddress
import os
import time

from spa_lite.core.b64 import b64decode_key
from spa_lite.core.cipher import check_key, mode_name
from spa_lite.core.digests import digest_name, hmac_function
from spa_lite.core.errors import SpaError
from spa_lite.core.fields import parse_ipv4
from spa_lite import textfile
from spa_lite.errors import UsageError
from spa_lite.server.model import addr_key, strict_address

PLACEHOLDER = "__CHANGEME__"
MAX_INCLUDE_DEPTH = 3
DEFAULT_FW_ACCESS_TIMEOUT = 30
DEFAULT_MAX_FW_TIMEOUT = 300
DEFAULT_RUN_DIR = "/var/run/spa-lite"


class ConfigError(UsageError):
    """A configuration problem; the message starts with ``file:line:``."""


# ---------------------------------------------------------------- generic line reader
def config_lines(text: str, path: str):
    """Yield (where, KEYWORD, value) for each setting line."""
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        parts = line.split(None, 1)
        keyword = parts[0].rstrip(":")
        value = parts[1] if len(parts) > 1 else ""
        cut = value.find(";")
        if cut >= 0:
            value = value[:cut]
        yield "%s:%d" % (path, lineno), keyword, value.strip()


def read_text(path: str, where: str = None) -> str:
    try:
        return textfile.read_text(path)
    except FileNotFoundError:
        raise ConfigError("%s: no such file: %s" % (where or path, path))
    except (OSError, UnicodeError) as exc:
        raise ConfigError("%s: cannot read %s: %s"
                          % (where or path, path, getattr(exc, "strerror", None) or exc))


def parse_bool(value: str, where: str, keyword: str) -> bool:
    v = value.strip().upper()
    if v in ("Y", "YES", "1", "TRUE", "ON"):
        return True
    if v in ("N", "NO", "0", "FALSE", "OFF"):
        return False
    raise ConfigError("%s: %s must be Y or N, not %r" % (where, keyword, value))


def parse_int(value: str, where: str, keyword: str, lo: int, hi: int) -> int:
    v = value.strip()
    if not v.isdigit() or not lo <= int(v) <= hi:
        raise ConfigError("%s: %s must be a number from %d to %d, not %r"
                          % (where, keyword, lo, hi, value))
    return int(v)


def _items(value: str):
    """The non-empty, stripped entries of a comma list."""
    return [i.strip() for i in value.split(",") if i.strip()]


def parse_networks(value: str, where: str, keyword: str):
    """``ANY`` or a comma list of addresses, CIDRs and dotted masks -> list of networks."""
    nets = []
    for item in _items(value):
        if item.upper() == "ANY":
            nets.append(ipaddress.ip_network("0.0.0.0/0"))
            nets.append(ipaddress.ip_network("::/0"))
            continue
        addr, slash, mask = item.partition("/")
        literal = strict_address(addr)
        try:
            if literal is None or (slash and not mask):
                raise ValueError
            if mask and parse_ipv4(mask) is not None:     # 192.168.1.0/255.255.255.0
                net = ipaddress.ip_network("%s/%s" % (literal, mask), strict=False)
            elif mask and not mask.isdigit():
                raise ValueError
            else:
                net = ipaddress.ip_network("%s/%s" % (literal, mask) if mask else literal,
                                           strict=False)
        except ValueError:
            raise ConfigError("%s: %s: invalid address or network %r (an IPv4 or IPv6 "
                              "literal, optionally /prefix or /netmask)" % (where, keyword, item))
        if net.prefixlen == 0 and int(ipaddress.ip_address(literal)) != 0:
            # fwknopd silently reads 10.0.0.2/0 as "any address": almost surely a typo
            raise ConfigError("%s: %s: %r matches every address (prefix length 0); write "
                              "ANY if that is meant" % (where, keyword, item))
        nets.append(net)
    if not nets:
        raise ConfigError("%s: %s is empty" % (where, keyword))
    return nets


def net_keys(nets):
    """[(version, network int, mask int)] of ipaddress networks, for _key_in."""
    return [(n.version, int(n.network_address), int(n.netmask)) for n in nets]


def _key_in(key, keys) -> bool:
    if key is None:
        return False
    version, value = key
    for v, net, mask in keys:
        if v == version and value & mask == net:
            return True
    return False


def parse_port_list(value: str, where: str, keyword: str):
    """``tcp/22, udp/53`` -> [("tcp", 22), ("udp", 53)]; fwknopd allows only tcp and udp."""
    out = []
    for item in _items(value):
        proto, _, port = item.partition("/")
        proto = proto.strip().lower()
        if proto not in ("tcp", "udp") or not port.strip().isdigit() \
                or not 0 < int(port) <= 65535:
            raise ConfigError("%s: %s: invalid entry %r (expected tcp/N or udp/N)"
                              % (where, keyword, item))
        out.append((proto, int(port)))
    if not out:
        raise ConfigError("%s: %s is empty" % (where, keyword))
    return out


# ---------------------------------------------------------------- access.conf
class Stanza:
    """One access.conf stanza (from a SOURCE line to the next)."""

    def __init__(self, number: int, where: str) -> None:
        self.number = number              # 1-based, as fwknopd numbers stanzas in logs
        self.where = where                # file:line of its SOURCE
        self.sources = []
        self.destinations = None          # None: any destination
        self.open_ports = None            # None: any requested tcp/udp port
        self.restrict_ports = []
        self.key = None
        self.hmac_key = None
        self.hmac_type = "sha256"
        self.mode = "cbc"
        self.fw_access_timeout = DEFAULT_FW_ACCESS_TIMEOUT
        self.max_fw_timeout = DEFAULT_MAX_FW_TIMEOUT
        self.require_username = None
        self.require_source_address = False
        self.access_expire = None         # epoch seconds
        self.enable_cmd_exec = False
        self.enable_cmd_sudo_exec = False
        self.cmd_sudo_exec_user = None
        self.cmd_sudo_exec_group = None
        self.cmd_exec_user = None
        self.cmd_exec_group = None
        self.cmd_cycle_open = None
        self.cmd_cycle_close = None
        self.cmd_cycle_timer = None
        self.force_nat = None             # (ip, port)
        self.force_snat = None
        self.force_masquerade = False
        self.disable_dnat = False
        self.forward_all = False
        self.gpg = False                  # GnuPG SPA: GPG_DECRYPT_PW set or GPG_ALLOW_NO_PW Y
        self.gpg_home_dir = None          # None: fwknopd.conf GPG_HOME_DIR (see gpgstanza)
        self.gpg_exe = None               # None: fwknopd.conf GPG_EXE
        self.gpg_decrypt_id = None
        self.gpg_decrypt_pw = None        # bytes; b"" with GPG_ALLOW_NO_PW
        self.gpg_allow_no_pw = False
        self.gpg_require_sig = None       # None: Y unless GPG_DISABLE_SIG Y (fwknopd's default)
        self.gpg_disable_sig = False
        self.gpg_ignore_sig_error = False
        self.gpg_remote_ids = []
        self.gpg_fingerprints = []
        self.gpg_decrypt_fprs = set()     # the decryption key's fingerprints, found at start
        self.seen = {}                    # keyword -> where (for messages)
        self.raw = []                     # (KEYWORD, value) as written, for spa-lite migrate
        self._keys = None                 # (sources, destinations) as net_keys, on first use
        self._mac = None                  # prepared HMAC function, on first use

    def matches(self, src: str, dst: str) -> bool:
        """SOURCE (and DESTINATION, if set) against the IP header addresses."""
        return self.matches_keys(addr_key(src), addr_key(dst))

    def mac_function(self):
        """The stanza's HMAC as a prepared function (digests.hmac_function), made once."""
        if self._mac is None:
            self._mac = hmac_function(self.hmac_type, self.hmac_key)
        return self._mac

    def matches_keys(self, src, dst) -> bool:
        """``matches`` for addresses already turned into ``addr_key`` form: the server does
        that once per packet, then tries every stanza with integer masks."""
        if self._keys is None:
            self._keys = (net_keys(self.sources),
                          None if self.destinations is None else net_keys(self.destinations))
        sources, destinations = self._keys
        return _key_in(src, sources) and (destinations is None or _key_in(dst, destinations))

    def describe(self) -> dict:
        """The stanza's effective settings under fwknop's keyword names, secrets masked
        (for --dump-config)."""
        out = {}
        for attr, kw in DESCRIBE_KEYWORDS:
            v = getattr(self, attr)
            if v is None or v is False or v == []:
                continue
            if attr in ("key", "hmac_key", "gpg_decrypt_pw"):
                v = "<set, %d bytes>" % len(v)
            elif isinstance(v, list):
                v = ", ".join("%s/%s" % x if isinstance(x, tuple) else str(x) for x in v)
            elif isinstance(v, tuple):
                v = " ".join(str(x) for x in v)
            elif v is True:
                v = "Y"
            out[kw] = v
        return out


DESCRIBE_KEYWORDS = (
    ("sources", "SOURCE"), ("destinations", "DESTINATION"), ("open_ports", "OPEN_PORTS"),
    ("restrict_ports", "RESTRICT_PORTS"), ("key", "KEY"), ("hmac_key", "HMAC_KEY"),
    ("hmac_type", "HMAC_DIGEST_TYPE"), ("mode", "ENCRYPTION_MODE"),
    ("fw_access_timeout", "FW_ACCESS_TIMEOUT"), ("max_fw_timeout", "MAX_FW_TIMEOUT"),
    ("require_username", "REQUIRE_USERNAME"), ("require_source_address", "REQUIRE_SOURCE_ADDRESS"),
    ("access_expire", "ACCESS_EXPIRE_EPOCH"), ("enable_cmd_exec", "ENABLE_CMD_EXEC"),
    ("cmd_exec_user", "CMD_EXEC_USER"), ("cmd_exec_group", "CMD_EXEC_GROUP"),
    ("cmd_cycle_open", "CMD_CYCLE_OPEN"), ("cmd_cycle_close", "CMD_CYCLE_CLOSE"),
    ("cmd_cycle_timer", "CMD_CYCLE_TIMER"), ("force_nat", "FORCE_NAT"),
    ("force_snat", "FORCE_SNAT"), ("force_masquerade", "FORCE_MASQUERADE"),
    ("disable_dnat", "DISABLE_DNAT"), ("forward_all", "FORWARD_ALL"),
    ("gpg_home_dir", "GPG_HOME_DIR"), ("gpg_exe", "GPG_EXE"), ("gpg_decrypt_id", "GPG_DECRYPT_ID"),
    ("gpg_decrypt_pw", "GPG_DECRYPT_PW"), ("gpg_allow_no_pw", "GPG_ALLOW_NO_PW"),
    ("gpg_require_sig", "GPG_REQUIRE_SIG"), ("gpg_ignore_sig_error", "GPG_IGNORE_SIG_VERIFY_ERROR"),
    ("gpg_remote_ids", "GPG_REMOTE_ID"), ("gpg_fingerprints", "GPG_FINGERPRINT_ID"),
)

KEY_KEYWORDS = ("KEY", "KEY_BASE64", "HMAC_KEY", "HMAC_KEY_BASE64", "HMAC_DIGEST_TYPE",
                "ENCRYPTION_MODE", "GPG_DECRYPT_ID", "GPG_DECRYPT_PW", "GPG_ALLOW_NO_PW",
                "GPG_REQUIRE_SIG", "GPG_DISABLE_SIG", "GPG_IGNORE_SIG_VERIFY_ERROR",
                "GPG_REMOTE_ID", "GPG_FINGERPRINT_ID", "GPG_HOME_DIR", "GPG_EXE")
GPG_KEYWORDS = {k for k in KEY_KEYWORDS if k.startswith("GPG_")}


def _set_stanza(st: Stanza, kw: str, value: str, where: str, warnings: list) -> None:
    if kw in st.seen and kw != "SOURCE":
        warnings.append("%s: %s repeated in stanza %d (first at %s); the later value wins"
                        % (where, kw, st.number, st.seen[kw]))
    st.seen[kw] = where
    st.raw.append((kw, value))
    if kw in ("KEY", "KEY_BASE64", "HMAC_KEY", "HMAC_KEY_BASE64") and value == PLACEHOLDER:
        raise ConfigError("%s: %s is still the placeholder %s: set a real key (spa-lite keygen)"
                          % (where, kw, PLACEHOLDER))
    try:
        if kw == "DESTINATION":
            st.destinations = parse_networks(value, where, kw)
        elif kw == "OPEN_PORTS":
            st.open_ports = parse_port_list(value, where, kw)
        elif kw == "RESTRICT_PORTS":
            st.restrict_ports = parse_port_list(value, where, kw)
        elif kw == "KEY":
            st.key = value.encode()
        elif kw == "KEY_BASE64":
            st.key = b64decode_key(value, "the value")
        elif kw == "HMAC_KEY":
            st.hmac_key = value.encode()
        elif kw == "HMAC_KEY_BASE64":
            st.hmac_key = b64decode_key(value, "the value")
        elif kw == "HMAC_DIGEST_TYPE":
            st.hmac_type = digest_name(value)
        elif kw == "ENCRYPTION_MODE":
            if value.strip().lower() not in ("asymmetric", "gpg"):   # GPG_* keywords decide
                st.mode = mode_name(value)
        elif kw == "FW_ACCESS_TIMEOUT":
            st.fw_access_timeout = parse_int(value, where, kw, 1, 2 ** 31 - 1)
        elif kw == "MAX_FW_TIMEOUT":
            st.max_fw_timeout = parse_int(value, where, kw, 1, 2 ** 31 - 1)
        elif kw == "REQUIRE_USERNAME":
            st.require_username = value
        elif kw in ("REQUIRE_SOURCE_ADDRESS", "REQUIRE_SOURCE"):
            st.require_source_address = parse_bool(value, where, kw)
        elif kw == "ACCESS_EXPIRE":
            try:
                st.access_expire = int(time.mktime(time.strptime(value, "%m/%d/%Y")))
            except (ValueError, OverflowError):
                raise ConfigError("%s: ACCESS_EXPIRE must be MM/DD/YYYY, not %r" % (where, value))
        elif kw == "ACCESS_EXPIRE_EPOCH":
            st.access_expire = parse_int(value, where, kw, 0, 2 ** 63 - 1)
        elif kw == "ENABLE_CMD_EXEC":
            st.enable_cmd_exec = parse_bool(value, where, kw)
        elif kw == "ENABLE_CMD_SUDO_EXEC":
            st.enable_cmd_sudo_exec = parse_bool(value, where, kw)
        elif kw == "CMD_SUDO_EXEC_USER":
            st.cmd_sudo_exec_user = value
        elif kw == "CMD_SUDO_EXEC_GROUP":
            st.cmd_sudo_exec_group = value
        elif kw == "CMD_EXEC_USER":
            st.cmd_exec_user = value
        elif kw == "CMD_EXEC_GROUP":
            st.cmd_exec_group = value
        elif kw == "CMD_CYCLE_OPEN":
            st.cmd_cycle_open = value
        elif kw == "CMD_CYCLE_CLOSE":
            st.cmd_cycle_close = value
        elif kw == "CMD_CYCLE_TIMER":
            st.cmd_cycle_timer = parse_int(value, where, kw, 1, 2 ** 31 - 1)
        elif kw == "FORCE_NAT":
            parts = value.split()
            if len(parts) != 2 or not parts[1].isdigit() or not 0 <= int(parts[1]) <= 65535:
                raise ConfigError("%s: FORCE_NAT must be '<IP> <port>', not %r" % (where, value))
            ip = strict_address(parts[0])
            if ip is None:
                raise ConfigError("%s: FORCE_NAT: invalid IP %r" % (where, parts[0]))
            st.force_nat = (ip, int(parts[1]))
        elif kw == "FORCE_SNAT":
            st.force_snat = strict_address(value)
            if st.force_snat is None:
                raise ConfigError("%s: FORCE_SNAT: invalid IP %r" % (where, value))
        elif kw == "FORCE_MASQUERADE":
            st.force_masquerade = parse_bool(value, where, kw)
        elif kw == "DISABLE_DNAT":
            st.disable_dnat = parse_bool(value, where, kw)
        elif kw == "FORWARD_ALL":
            st.forward_all = parse_bool(value, where, kw)
        elif kw in GPG_KEYWORDS:
            _set_gpg(st, kw, value, where)
        else:
            warnings.append("%s: unknown access.conf keyword %s; ignored" % (where, kw))
    except SpaError as exc:
        raise ConfigError("%s: %s: %s" % (where, kw, exc))


def _set_gpg(st: Stanza, kw: str, value: str, where: str) -> None:
    """The GPG_* access.conf keywords, as fwknopd's access.c reads them."""
    if kw == "GPG_HOME_DIR":
        st.gpg_home_dir = value
    elif kw == "GPG_EXE":
        st.gpg_exe = value
    elif kw == "GPG_DECRYPT_ID":
        st.gpg_decrypt_id = value
    elif kw == "GPG_DECRYPT_PW":
        if value == PLACEHOLDER:
            raise ConfigError("%s: GPG_DECRYPT_PW is still the placeholder %s" % (where, PLACEHOLDER))
        st.gpg_decrypt_pw = value.encode()
        st.gpg = True
    elif kw == "GPG_ALLOW_NO_PW":
        st.gpg_allow_no_pw = parse_bool(value, where, kw)
        if st.gpg_allow_no_pw:
            st.gpg_decrypt_pw = b""
            st.gpg = True
    elif kw == "GPG_REQUIRE_SIG":
        st.gpg_require_sig = parse_bool(value, where, kw)
    elif kw == "GPG_DISABLE_SIG":
        st.gpg_disable_sig = parse_bool(value, where, kw)
    elif kw == "GPG_IGNORE_SIG_VERIFY_ERROR":
        st.gpg_ignore_sig_error = parse_bool(value, where, kw)
    elif kw == "GPG_REMOTE_ID":
        st.gpg_remote_ids = _items(value)
    elif kw == "GPG_FINGERPRINT_ID":
        st.gpg_fingerprints = [f.replace(" ", "").upper() for f in _items(value)]


def _finish_gpg(st: Stanza, warnings: list) -> None:
    """fwknopd's GnuPG defaults: signatures required unless GPG_DISABLE_SIG, and then a
    GPG_REMOTE_ID or GPG_FINGERPRINT_ID list is mandatory."""
    gpg_kws = [k for k in st.seen if k in GPG_KEYWORDS]
    if not st.gpg:
        if gpg_kws and st.key is None:
            raise ConfigError("%s: stanza %d has GnuPG settings but neither GPG_DECRYPT_PW nor "
                              "GPG_ALLOW_NO_PW Y, so it can decrypt nothing"
                              % (st.seen[gpg_kws[0]], st.number))
        return
    if not st.gpg_decrypt_id:
        raise ConfigError("%s: stanza %d uses GnuPG but has no GPG_DECRYPT_ID (the server key)"
                          % (st.where, st.number))
    if st.gpg_require_sig is None:
        st.gpg_require_sig = not st.gpg_disable_sig
    elif st.gpg_require_sig and st.gpg_disable_sig:
        warnings.append("%s: stanza %d: GPG_REQUIRE_SIG and GPG_DISABLE_SIG are both set; "
                        "signatures are checked" % (st.where, st.number))
    if not st.gpg_require_sig:
        warnings.append("%s: stanza %d accepts unsigned GnuPG packets (GPG_DISABLE_SIG): anyone "
                        "with the server's public key can knock" % (st.where, st.number))
    elif not (st.gpg_remote_ids or st.gpg_fingerprints):
        raise ConfigError("%s: stanza %d requires GnuPG signatures but has neither GPG_REMOTE_ID "
                          "nor GPG_FINGERPRINT_ID (whose signatures to accept)"
                          % (st.where, st.number))


def _finish_stanza(st: Stanza, warnings: list = None) -> None:
    """Checks that need the whole stanza, with fwknopd's rules."""
    _finish_gpg(st, warnings if warnings is not None else [])
    if st.key is None and not st.gpg:
        raise ConfigError("%s: stanza %d has no KEY or KEY_BASE64 (nor GnuPG settings)"
                          % (st.where, st.number))
    if st.key is not None:
        try:
            check_key(st.key, st.mode)
        except SpaError as exc:
            raise ConfigError("%s: stanza %d: %s" % (st.seen.get("KEY_BASE64") or st.seen.get("KEY"),
                                                     st.number, exc))
    if st.hmac_key is not None:
        if st.hmac_key == st.key:
            raise ConfigError("%s: stanza %d: the encryption key and the HMAC key should not be "
                              "identical" % (st.where, st.number))
        if st.mode == "legacy":
            raise ConfigError("%s: stanza %d: legacy encryption mode cannot be used with HMAC"
                              % (st.where, st.number))
        if len(st.hmac_key) > 128:
            raise ConfigError("%s: stanza %d: HMAC key longer than 128 bytes"
                              % (st.where, st.number))
    if (st.force_snat or st.force_masquerade) and not (st.force_nat or st.forward_all):
        raise ConfigError("%s: stanza %d: FORCE_SNAT/FORCE_MASQUERADE need FORCE_NAT or "
                          "FORWARD_ALL" % (st.where, st.number))
    if st.cmd_cycle_open and st.cmd_cycle_timer is None and \
            (st.cmd_cycle_close or "").upper() != "NONE":
        raise ConfigError("%s: stanza %d: CMD_CYCLE_OPEN needs CMD_CYCLE_TIMER (or "
                          "CMD_CYCLE_CLOSE NONE)" % (st.where, st.number))
    if st.cmd_cycle_close and not st.cmd_cycle_open:
        raise ConfigError("%s: stanza %d: CMD_CYCLE_CLOSE without CMD_CYCLE_OPEN"
                          % (st.where, st.number))


def check_perms(path: str, warnings: list) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & 0o077:
        warnings.append("%s: permissions %o are too open for a file with keys; run chmod 600 %s"
                        % (path, mode & 0o777, path))


def parse_access(path: str, warnings: list, text: str = None, entries=None):
    """Stanzas from an access.conf (and what it includes), in fwknopd's order; or from
    ready-made ``(where, KEYWORD, value)`` entries (the uci config)."""
    stanzas = []
    if entries is not None:
        _parse_access_entries(path, entries, stanzas, warnings, 0, set())
    else:
        _parse_access_file(path, text, stanzas, warnings, 0, set())
    if not stanzas:
        raise ConfigError("%s: no access stanzas (a stanza starts with a SOURCE line)" % path)
    for st in stanzas:
        _finish_stanza(st, warnings)
    return stanzas


def _parse_access_file(path, text, stanzas, warnings, depth, stack):
    if text is None:
        text = read_text(path)
        check_perms(path, warnings)
    real = os.path.realpath(path)
    if real in stack:
        raise ConfigError("%s: include loop" % path)
    _parse_access_entries(path, config_lines(text, path), stanzas, warnings, depth, stack | {real})


def _parse_access_entries(path, entries, stanzas, warnings, depth, stack):
    current = stanzas[-1] if stanzas else None
    for where, kw, value in entries:
        kwu = kw.upper()
        if kwu in ("%INCLUDE", "%INCLUDE_FOLDER", "%INCLUDE_KEYS"):
            if depth >= MAX_INCLUDE_DEPTH:
                raise ConfigError("%s: includes nested deeper than %d" % (where, MAX_INCLUDE_DEPTH))
            target = value if os.path.isabs(value) else os.path.join(os.path.dirname(path), value)
            if kwu == "%INCLUDE":
                _parse_access_file(target, read_text(target, where), stanzas, warnings,
                                   depth + 1, stack)
                check_perms(target, warnings)
            elif kwu == "%INCLUDE_FOLDER":
                try:
                    names = sorted(n for n in os.listdir(target) if n.endswith(".conf"))
                except OSError as exc:
                    raise ConfigError("%s: cannot list %s: %s" % (where, target, exc.strerror))
                for n in names:
                    f = os.path.join(target, n)
                    _parse_access_file(f, None, stanzas, warnings, depth + 1, stack)
            else:
                if current is None:
                    raise ConfigError("%s: %%include_keys outside a stanza" % where)
                for w2, k2, v2 in config_lines(read_text(target, where), target):
                    if k2.upper() in KEY_KEYWORDS:
                        _set_stanza(current, k2.upper(), v2, w2, warnings)
                check_perms(target, warnings)
            current = stanzas[-1] if stanzas else None
            continue
        if not value:
            raise ConfigError("%s: %s has no value" % (where, kw))
        if kwu == "SOURCE":
            current = Stanza(len(stanzas) + 1, where)
            current.sources = parse_networks(value, where, "SOURCE")
            current.raw.append(("SOURCE", value))
            stanzas.append(current)
            continue
        if current is None:
            raise ConfigError("%s: %s before the first SOURCE line" % (where, kw))
        _set_stanza(current, kwu, value, where, warnings)


# ---------------------------------------------------------------- fwknopd.conf
# Keywords fwknopd 2.6 knows that do not apply to spa-lite: accepted silently.
FWKNOPD_IGNORED = {
    "VERBOSE", "ENABLE_PCAP_PROMISC", "ENABLE_NFQ_CAPTURE", "NFQ_INTERFACE", "NFQ_PORT",
    "NFQ_TABLE", "NFQ_CHAIN", "NFQ_QUEUE_NUMBER", "NFQ_LOOP_SLEEP", "PCAP_DISPATCH_COUNT",
    "PCAP_LOOP_SLEEP", "MAX_SNIFF_BYTES", "ENABLE_TCP_SERVER",
    "TCPSERV_PORT", "LOCALE", "ENABLE_EXTERNAL_CMDS", "EXTERNAL_CMD_OPEN", "EXTERNAL_CMD_CLOSE",
    "EXTERNAL_CMD_ALARM", "ENABLE_EXT_CMD_PREFIX", "EXT_CMD_PREFIX", "FLUSH_FIREWD_AT_INIT",
    "FLUSH_FIREWD_AT_EXIT", "ENABLE_FIREWD_SNAT", "ENABLE_FIREWD_OUTPUT", "FIREWD_INPUT_ACCESS",
    "FIREWD_OUTPUT_ACCESS", "FIREWD_FORWARD_ACCESS", "FIREWD_DNAT_ACCESS", "FIREWD_SNAT_ACCESS",
    "FIREWD_MASQUERADE_ACCESS", "ENABLE_FIREWD_COMMENT_CHECK", "ENABLE_IPT_OUTPUT",
    "IPT_INPUT_ACCESS", "IPT_OUTPUT_ACCESS", "IPT_FORWARD_ACCESS", "IPT_DNAT_ACCESS",
    "IPT_SNAT_ACCESS", "IPT_MASQUERADE_ACCESS", "ENABLE_IPT_COMMENT_CHECK", "IPFW_START_RULE_NUM",
    "IPFW_MAX_RULES", "FLUSH_IPFW_AT_INIT", "FLUSH_IPFW_AT_EXIT", "IPFW_ACTIVE_SET_NUM",
    "IPFW_EXPIRE_SET_NUM", "IPFW_EXPIRE_PURGE_INTERVAL", "IPFW_ADD_CHECK_STATE", "PF_ANCHOR_NAME",
    "PF_EXPIRE_INTERVAL", "DIGEST_DB_FILE", "FIREWALL_EXE", "UDPSERV_SELECT_TIMEOUT",
    "RULES_CHECK_THRESHOLD", "CMD_EXEC_TIMEOUT", "EXIT_AT_INTF_DOWN", "SUDO_EXE",
    "ENABLE_IPT_SNAT", "ENABLE_DESTINATION_RULE", "ENABLE_RULE_PREPEND",
}

# Keywords spa-lite uses, with defaults (strings, as in the file).
FWKNOPD_DEFAULTS = {
    "PCAP_INTF": "eth0",
    "PCAP_FILTER": "udp port 62201",
    "PCAP_FILE": "",
    "ENABLE_PCAP_ANY_DIRECTION": "N",
    "ENABLE_UDP_SERVER": "N",
    "UDPSERV_PORT": "62201",
    "ENABLE_SPA_PACKET_AGING": "Y",
    "MAX_SPA_PACKET_AGE": "120",
    "ENABLE_DIGEST_PERSISTENCE": "Y",
    "ENABLE_SPA_OVER_HTTP": "N",
    "ALLOW_ANY_USER_AGENT": "N",
    "ENABLE_X_FORWARDED_FOR": "N",
    "ENABLE_NAT_DNS": "Y",
    "ENABLE_IPT_FORWARDING": "N",
    "ENABLE_IPT_LOCAL_NAT": "N",
    "ENABLE_FIREWD_FORWARDING": "N",
    "ENABLE_FIREWD_LOCAL_NAT": "N",
    "SNAT_TRANSLATE_IP": "",
    "FLUSH_IPT_AT_INIT": "Y",
    "FLUSH_IPT_AT_EXIT": "Y",
    "SYSLOG_IDENTITY": "spa-lite",
    "SYSLOG_FACILITY": "LOG_DAEMON",
    "FWKNOP_RUN_DIR": DEFAULT_RUN_DIR,
    "FWKNOP_CONF_DIR": "/etc/fwknop",
    "ACCESS_FILE": "access.conf",
    "ACCESS_FOLDER": "",
    "FWKNOP_PID_FILE": "$FWKNOP_RUN_DIR/spa-lite.pid",
    "DIGEST_FILE": "$FWKNOP_RUN_DIR/digest.cache",
    "GPG_HOME_DIR": "/root/.gnupg",   # defaults for GnuPG stanzas without their own
    "GPG_EXE": "/usr/bin/gpg",
    # spa-lite additions (documented in README)
    "FIREWALL_TYPE": "",
    "PROTECT_PORTS": "",
    "FLUSH_AT_EXIT": "N",
    "CMD_CYCLE_OPEN": "",
    "CMD_CYCLE_CLOSE": "",
    "REPLAY_GUARD_AFTER_STATE_LOSS": "boot",
    "LOG_JUNK_INTERVAL": "60",
    "STATUS_FILE": "",        # empty: status.json beside DIGEST_FILE (server/status.py)
}
ALIASES = {"UDP_SERV_PORT": "UDPSERV_PORT"}


class ServerConfig:
    """fwknopd.conf values (with defaults) and where each came from."""

    def __init__(self) -> None:
        self.values = dict(FWKNOPD_DEFAULTS)
        self.where = {k: "default" for k in self.values}
        self.warnings = []

    def load(self, path: str, text: str = None, entries=None) -> None:
        if entries is None:
            entries = config_lines(read_text(path) if text is None else text, path)
        for where, kw, value in entries:
            kw = ALIASES.get(kw.upper(), kw.upper())
            if kw in FWKNOPD_IGNORED:
                continue
            if kw not in FWKNOPD_DEFAULTS:
                self.warnings.append("%s: unknown fwknopd.conf keyword %s; ignored" % (where, kw))
                continue
            self.values[kw] = value
            self.where[kw] = where

    def set(self, kw: str, value: str, where: str) -> None:
        self.values[kw] = value
        self.where[kw] = where

    def get(self, kw: str) -> str:
        """Value with a leading ``$VAR`` expanded (fwknopd expands only at the start)."""
        v = self.values[kw]
        for _ in range(4):
            if not v.startswith("$"):
                break
            name = v[1:].split("/", 1)[0]
            if name not in self.values:
                raise ConfigError("%s: %s refers to unknown variable $%s" % (self.where[kw], kw, name))
            v = self.values[name] + v[1 + len(name):]
        return v

    def flag(self, kw: str) -> bool:
        return parse_bool(self.get(kw), self.where[kw], kw)

    def number(self, kw: str, lo: int, hi: int) -> int:
        return parse_int(self.get(kw), self.where[kw], kw, lo, hi)


def parse_pcap_filter(text: str, where: str):
    """The subset of BPF syntax spa-lite compiles itself: ``[udp|tcp|udp or tcp] [dst] port N``
    or ``portrange A-B``. Returns (set of protocols, low port, high port)."""
    words = text.replace("(", " ").replace(")", " ").lower().split()
    protos = set()
    lo = hi = None
    i = 0
    while i < len(words):
        w = words[i]
        if w in ("udp", "tcp"):
            protos.add(w)
        elif w in ("or", "dst", "and", "ip", "ip6"):
            pass
        elif w in ("port", "portrange") and i + 1 < len(words):
            spec = words[i + 1]
            i += 1
            a, _, b = spec.partition("-")
            if not a.isdigit() or (b and not b.isdigit()):
                raise ConfigError("%s: PCAP_FILTER: invalid port %r" % (where, spec))
            lo, hi = int(a), int(b or a)
            if not 0 < lo <= hi <= 65535:
                raise ConfigError("%s: PCAP_FILTER: invalid port %r" % (where, spec))
        else:
            raise ConfigError("%s: PCAP_FILTER %r: spa-lite understands only "
                              "'[udp|tcp|udp or tcp] [dst] port N' and 'portrange A-B'" % (where, text))
        i += 1
    if lo is None:
        raise ConfigError("%s: PCAP_FILTER %r names no port" % (where, text))
    return protos or {"udp", "tcp"}, lo, hi
