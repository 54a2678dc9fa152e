"""Handlers for ``spa-lite send``, ``keygen`` and ``decode``: the I/O shell around the core.

Here, and only here, the client touches the clock, os.urandom, the terminal and sockets.
"""

import os
import sys
import time

from spa_lite.client import gpgsend
from spa_lite.client.rcfile import default_rc_path, load_rc, load_uci_client
from spa_lite.client.request import Setting, build_request, key_from
from spa_lite.client.show import format_fields
from spa_lite.core import message as core_message
from spa_lite.core import cipher, wire
from spa_lite.core.cipher import mode_name
from spa_lite.core.digests import digest_name
from spa_lite.core.errors import SpaError
from spa_lite.errors import CryptoError, UsageError
from spa_lite.privfile import write_private

# argparse dest -> (fwknoprc variable, the flag named in error messages)
SEND_OPTIONS = {
    "access": ("ACCESS", "-A/--access"),
    "allow_ip": ("ALLOW_IP", "-a/--allow-ip"),
    "source_ip": ("SOURCE_IP", "-s/--source-ip"),
    "destination": ("SPA_SERVER", "-D/--destination"),
    "server_port": ("SPA_SERVER_PORT", "-p/--server-port"),
    "server_proto": ("SPA_SERVER_PROTO", "-P/--server-proto"),
    "source_port": ("SPA_SOURCE_PORT", "-S/--source-port"),
    "rand_port": ("RAND_PORT", "-r/--rand-port"),
    "key_rijndael": ("KEY", "--key-rijndael"),
    "key_base64_rijndael": ("KEY_BASE64", "--key-base64-rijndael"),
    "key_hmac": ("HMAC_KEY", "--key-hmac"),
    "key_base64_hmac": ("HMAC_KEY_BASE64", "--key-base64-hmac"),
    "use_hmac": ("USE_HMAC", "--use-hmac"),
    "digest_type": ("DIGEST_TYPE", "-m/--digest-type"),
    "hmac_digest_type": ("HMAC_DIGEST_TYPE", "--hmac-digest-type"),
    "encryption_mode": ("ENCRYPTION_MODE", "-M/--encryption-mode"),
    "nat_access": ("NAT_ACCESS", "-N/--nat-access"),
    "nat_local": ("NAT_LOCAL", "--nat-local"),
    "nat_port": ("NAT_PORT", "--nat-port"),
    "nat_rand_port": ("NAT_RAND_PORT", "--nat-rand-port"),
    "fw_timeout": ("FW_TIMEOUT", "-f/--fw-timeout"),
    "server_cmd": ("SERVER_CMD", "-C/--server-cmd"),
    "spoof_user": ("SPOOF_USER", "-U/--spoof-user"),
    "time_offset_plus": ("TIME_OFFSET_PLUS", "--time-offset-plus"),
    "time_offset_minus": ("TIME_OFFSET_MINUS", "--time-offset-minus"),
    "user_agent": ("HTTP_USER_AGENT", "-u/--user-agent"),
    "server_resolve_ipv4": ("SERVER_RESOLVE_IPV4", "--server-resolve-ipv4"),
    "server_auth": ("SERVER_AUTH", "--server-auth"),
    "resolve_ip_https": ("RESOLVE_IP_HTTPS", "-R/--resolve-ip-https"),
    "resolve_http_only": ("RESOLVE_HTTP_ONLY", "--resolve-http-only"),
    "resolve_url": ("RESOLVE_URL", "--resolve-url"),
    "get_key": ("KEY_FILE", "-G/--get-key"),
    "get_hmac_key": ("HMAC_KEY_FILE", "--get-hmac-key"),
    "verbose": ("VERBOSE", "-v/--verbose"),
}
SEND_OPTIONS.update(gpgsend.OPTIONS)


def _warn(text: str, quiet: bool) -> None:
    if not quiet:
        sys.stderr.write("spa-lite: warning: %s\n" % text)


def _terminal_prompt():
    """A key prompt only when a person is at a terminal; cron and pipes get None."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    import getpass

    def ask(text):
        value = getpass.getpass(text)
        if not value:
            raise CryptoError("no key entered")
        return value
    return ask


def load_settings(args, options: dict):
    """``get(VAR)`` over command line, then the rc stanza, then [default]."""
    rc, warnings = {}, []
    no_rc = getattr(args, "no_rc_file", False)
    path = args.rc_file or default_rc_path()
    uci_file = getattr(args, "uci_file", None)
    if not uci_file and (getattr(args, "uci", False) or (
            args.named_config and not no_rc and not args.rc_file and not os.path.exists(path))):
        from spa_lite.uci import DEFAULT_PATH   # a router: no ~/.fwknoprc, maybe a client section
        if getattr(args, "uci", False) or os.path.exists(DEFAULT_PATH):
            uci_file = DEFAULT_PATH
    if uci_file:
        rc, warnings = load_uci_client(uci_file, args.named_config)
    elif not no_rc:
        rc, warnings = load_rc(path, args.named_config, required=bool(args.rc_file),
                               new_ok=bool(getattr(args, "save_rc_stanza", None)))
    elif args.named_config:
        raise UsageError("-n/--named-config needs an rc file (drop --no-rc-file)")
    for w in warnings:
        _warn(w, getattr(args, "quiet", False))
    cli = {}
    for dest, (var, flag) in options.items():
        v = getattr(args, dest, None)
        if v is None or v is False:
            continue
        cli[var] = Setting("Y" if v is True else v, flag)

    for pair in (("KEY", "KEY_BASE64"), ("HMAC_KEY", "HMAC_KEY_BASE64")):
        if any(v in cli for v in pair):      # a key on the command line hides the rc's key
            for v in pair:                   # in the other form
                rc.pop(v, None)

    def get(var):
        if var in cli:
            return cli[var]
        rv = rc.get(var)
        return Setting(rv.value, rv.where) if rv is not None else None
    get.cli = cli                        # what --save-rc-stanza writes
    return get


def _one_packet_aes() -> None:
    """The client en/decrypts one packet: pure-Python AES does that in about 0.3 ms, while
    importing pycryptodome costs 15-20 ms of start-up (python -X importtime), most of a
    cron knock's run time. The daemon keeps pycryptodome first (it pays the import once)."""
    cipher.prefer_backend("pure")


def _key_reader(args):
    """Where a key that no option or rc line gives comes from: --stdin/--fd (one line each,
    never a terminal prompt), else a prompt only with a person at a terminal, else nowhere."""
    fd = 0 if getattr(args, "stdin", False) else getattr(args, "fd", None)
    if fd is None:
        return None if args.quiet else _terminal_prompt()

    def read_line(text):
        data = b""
        try:
            while not data.endswith(b"\n") and len(data) <= 1024:
                ch = os.read(fd, 1)
                if not ch:
                    break
                data += ch
        except OSError as exc:
            raise UsageError("--fd %d: cannot read a key: %s" % (fd, exc.strerror or exc))
        key = data.rstrip(b"\r\n")
        if not key:
            raise CryptoError("%s: no key (%s gave an empty line)"
                              % (text.strip().rstrip(":"), "stdin" if fd == 0 else "fd %d" % fd))
        return key.decode("utf-8", "replace")
    return read_line


def _resolver(args, verbose: bool):
    """The -R callback: which URL, over which family, trusting which CAs."""
    def resolve(get):
        from spa_lite.client import resolve as res
        from spa_lite.client.request import parse_bool
        http_only = get("RESOLVE_HTTP_ONLY")
        http_only = http_only is not None and parse_bool(http_only)
        url_s = get("RESOLVE_URL")
        url = str(url_s.value).strip() if url_s else (
            res.DEFAULT_HTTP_URL if http_only else res.DEFAULT_HTTPS_URL)
        if not url.lower().startswith("https://"):
            _warn("resolver %s is not https: a forged answer would open the door for another "
                  "address" % url, args.quiet)
        ua = get("HTTP_USER_AGENT")
        ip = res.resolve_external_ip(url, _family(args), args.resolve_ca_file,
                                     args.resolve_timeout or res.TIMEOUT,
                                     str(ua.value) if ua else None)
        if verbose:
            sys.stderr.write("[+] Resolved external IP (via %s) as: %s\n" % (url, ip))
        return ip
    return resolve


def _family(args) -> int:
    import socket
    if getattr(args, "ipv4", False):
        return socket.AF_INET
    if getattr(args, "ipv6", False):
        return socket.AF_INET6
    return socket.AF_UNSPEC


def knock(args, get, test_mode: bool = False):
    """Build (and unless test_mode, send) one packet from settings; returns (request, wire
    text, (address, port) it went to or None)."""
    _one_packet_aes()
    verbose = args.verbose or (get("VERBOSE") is not None and str(get("VERBOSE").value).upper()[:1] in "Y1")
    req = build_request(get, os.urandom, int(time.time()), prompt=_key_reader(args),
                        test_mode=test_mode, resolve_ip=_resolver(args, verbose),
                        gpg_pw_fd=getattr(args, "gpg_signing_pw_fd", None))
    if req.message.timestamp > 2147483647:
        _warn("timestamp is past 2038; fwknopd 2.6.x servers reject it", args.quiet)
    try:
        if req.gpg is not None:     # GnuPG: only the server's key can decrypt, so no self-check
            wire_text, check = gpgsend.seal(req), req.message
        else:
            wire_text = wire.build(req.message, req.key, os.urandom(8), req.mode, req.hmac_key,
                                   req.hmac_type)
            # Self-check as fwknop -T does: what we send must decode with the same keys.
            check = wire.parse(wire_text, req.key, req.mode, req.hmac_key, req.hmac_type)
    except SpaError as exc:
        raise (CryptoError if exc.code in ("key", "hmac", "decrypt") else UsageError)(str(exc))
    if verbose:
        sys.stderr.write(format_fields(check, "gpg" if req.gpg else req.mode,
                                       req.hmac_key is not None and req.hmac_type or None,
                                       core_message.encode(req.message), wire_text))
    for note in req.notes:
        if not args.quiet:
            sys.stderr.write("[+] %s\n" % note)
    if test_mode:
        return req, wire_text, None
    from spa_lite.client.transport import send
    family = _family(args)
    if req.resolve_ipv4:
        import socket
        family = socket.AF_INET
    sent_to = send(wire_text, req.destination, req.port, req.proto, req.source_port,
                   family, req.user_agent)
    if verbose:
        sys.stderr.write("sent %d bytes of SPA data to %s %s/%d\n"
                         % (len(wire_text), sent_to[0], req.proto, sent_to[1]))
    return req, wire_text, sent_to


def cmd_send(args) -> int:
    if args.stanza_list:
        from spa_lite.client.rcsave import stanza_names
        for name in stanza_names(args.rc_file or default_rc_path()):
            sys.stdout.write(name + "\n")
        return 0
    get = load_settings(args, SEND_OPTIONS)
    if args.key_gen or args.key_gen_file:       # fwknop: -K FILE alone generates too
        return _send_keygen(args, get)
    req, wire_text, sent_to = knock(args, get, test_mode=args.test)
    if args.save_rc_stanza:
        _save_stanza(args, get)
    if args.save_packet:
        write_private(args.save_packet, wire_text + "\n")
    if args.test:
        sys.stdout.write(wire_text + "\n")
        return 0
    if args.wait_open:
        from spa_lite.client.connect import wait_open
        wait_open(args, req, sent_to)
    return 0


def _save_stanza(args, get, extra=()) -> None:
    from spa_lite.client import rcsave
    name = args.save_rc_stanza if isinstance(args.save_rc_stanza, str) else (
        args.named_config or rcsave.default_name(args.destination))
    values = rc_values(get.cli) + list(extra)
    confirm = None
    if not args.force_stanza and not args.quiet and sys.stdin.isatty() and sys.stderr.isatty():
        def confirm(question):
            sys.stderr.write(question)
            sys.stderr.flush()
            return sys.stdin.readline().strip().lower().startswith("y")
    note = rcsave.save_stanza(args.rc_file or default_rc_path(), name, values,
                              args.force_stanza, confirm)
    if not args.quiet:
        sys.stderr.write("[+] %s\n" % note)
    unsaved = [flag for flag, on in (
        ("-4", args.ipv4), ("-6", args.ipv6), ("--resolve-ca-file", args.resolve_ca_file),
        ("--resolve-timeout", args.resolve_timeout), ("--wait", args.wait),
        ("--wait-open", args.wait_open), ("-C", args.server_cmd), ("--server-auth", args.server_auth),
        ("--get-hmac-key", args.get_hmac_key)) if on]
    if unsaved:
        _warn("not saved in the stanza (fwknop's rc files have no variable for them, or "
              "fwknop 2.6.10 ignores it): %s" % ", ".join(unsaved), args.quiet)


# What fwknop writes for a command-line setting, where it differs from the option's text.
_UPPER = ("DIGEST_TYPE", "HMAC_DIGEST_TYPE", "ENCRYPTION_MODE")


def rc_values(cli: dict):
    """[(VAR, value)] for the command-line settings, as fwknop's --save-rc-stanza writes
    them (-s as ALLOW_IP source; the two time offsets as one TIME_OFFSET in seconds)."""
    from spa_lite.client.request import parse_time_offset
    out, offset = [], None
    for var, s in cli.items():
        if var in ("SERVER_CMD", "SERVER_AUTH", "HMAC_KEY_FILE"):
            continue                 # fwknop has no rc variable for these (2.6.10 reads
            # HMAC_KEY_FILE but never uses it: a stanza with it would knock without HMAC)
        if var == "SOURCE_IP":
            out.append(("ALLOW_IP", "source"))
        elif var in ("TIME_OFFSET_PLUS", "TIME_OFFSET_MINUS"):
            offset = (offset or 0) + parse_time_offset(s, 1 if var.endswith("PLUS") else -1)
        elif var in _UPPER:
            out.append((var, str(s.value).upper()))
        else:
            out.append((var, str(s.value)))
    if offset is not None:
        out.append(("TIME_OFFSET", str(offset)))
    return out


def _send_keygen(args, get) -> int:
    """fwknop -k: new keys printed, written to -K FILE, or saved into the rc stanza."""
    from spa_lite.client import keygen as keygen_mod
    s = get("HMAC_DIGEST_TYPE")
    try:
        hmac_type = digest_name(str(s.value)) if s else "sha256"
    except SpaError as exc:
        raise UsageError("%s: %s" % (s.where, exc))
    key_len, hmac_len = args.key_len, args.hmac_key_len or keygen_mod.HMAC_KEY_LEN[hmac_type]
    if not 1 <= key_len <= 32 or not 1 <= hmac_len <= 128:
        raise UsageError("--key-len must be 1..32 and --hmac-key-len 1..128 bytes")
    key_b64, hmac_b64 = keygen_mod.generate(os.urandom, key_len, hmac_len)
    if args.save_rc_stanza:
        _save_stanza(args, get, extra=[("KEY_BASE64", key_b64), ("HMAC_KEY_BASE64", hmac_b64),
                                       ("USE_HMAC", "Y")])
    elif args.key_gen_file:
        write_private(args.key_gen_file, keygen_mod.keygen_lines(key_b64, hmac_b64))
        if not args.quiet:
            sys.stderr.write("[+] Wrote Rijndael and HMAC keys to: %s\n" % args.key_gen_file)
    else:
        sys.stdout.write(keygen_mod.keygen_lines(key_b64, hmac_b64))
    return 0


def cmd_keygen(args) -> int:
    from spa_lite.client import keygen as keygen_mod   # shutil/subprocess for qrencode
    try:
        hmac_type = digest_name(args.hmac_digest_type)
    except SpaError as exc:
        raise UsageError("--hmac-digest-type: %s" % exc)
    key_len = args.key_len
    hmac_len = args.hmac_key_len or keygen_mod.HMAC_KEY_LEN[hmac_type]
    if not 1 <= key_len <= 32:
        raise UsageError("--key-len: must be 1..32 bytes")
    if not 1 <= hmac_len <= 128:
        raise UsageError("--hmac-key-len: must be 1..128 bytes")
    if getattr(args, "json", False) and args.qr:
        raise UsageError("--json and --qr are alternatives (the JSON holds the QR payload)")
    key_b64, hmac_b64 = keygen_mod.generate(os.urandom, key_len, hmac_len)
    lines = keygen_mod.keygen_lines(key_b64, hmac_b64)
    if args.key_gen_file:
        write_private(args.key_gen_file, lines)
    elif not getattr(args, "json", False):
        sys.stdout.write(lines)
    if args.save_uci:
        _save_keys_to_uci(args.uci_file, args.save_uci, key_b64, hmac_b64, hmac_type)
    if getattr(args, "json", False):
        import json
        sys.stdout.write(json.dumps(keygen_mod.as_json(
            key_b64, hmac_b64, hmac_type, args.key_gen_file, args.save_uci), sort_keys=True) + "\n")
    if args.qr:
        payload = keygen_mod.qr_payload(key_b64, hmac_b64)
        art = keygen_mod.render_qr(payload)
        if art is None:
            sys.stdout.write("(install qrencode for a scannable QR code; enter this in the "
                             "Fwknop2 app instead)\nQR payload: %s\n" % payload)
        else:
            sys.stdout.write(art)
    return 0


#: what a section created by ``keygen --save-uci`` may open (edit open_ports for more)
NEW_SECTION_PORTS = "tcp/22"


def _save_keys_to_uci(path, section: str, key_b64: str, hmac_b64: str, hmac_type: str) -> None:
    """Put the keys into an access section of the uci config (OpenWrt onboarding: the phone
    scans the QR, the router keeps the same keys)."""
    from spa_lite import uci
    path = path or uci.DEFAULT_PATH
    values = {"key_base64": key_b64, "hmac_key_base64": hmac_b64}
    if hmac_type != "sha256":
        values["hmac_digest_type"] = hmac_type
    exists = os.path.exists(path) and any(
        s.name == section for s in uci.load(path))
    if not exists:
        # a stanza starts with SOURCE; a new one opens ssh only: under fwknop's rules a
        # stanza without OPEN_PORTS lets the key open any port the client asks for
        values = dict(source="ANY", open_ports=NEW_SECTION_PORTS, **values)
    uci.set_section(path, "access", section, values)
    sys.stderr.write("keys written to access section '%s' of %s%s; apply with: "
                     "/etc/init.d/spa-lite reload\n"
                     % (section, path, " (new: source ANY, open_ports %s)" % NEW_SECTION_PORTS
                        if not exists else ""))


def _decode_keys(args):
    get = load_settings(args, {
        "key_rijndael": ("KEY", "--key-rijndael"),
        "key_base64_rijndael": ("KEY_BASE64", "--key-base64-rijndael"),
        "key_hmac": ("HMAC_KEY", "--key-hmac"),
        "key_base64_hmac": ("HMAC_KEY_BASE64", "--key-base64-hmac"),
        "encryption_mode": ("ENCRYPTION_MODE", "-M/--encryption-mode"),
        "hmac_digest_type": ("HMAC_DIGEST_TYPE", "--hmac-digest-type"),
    })

    k = key_from(get, "KEY", "KEY_BASE64", "encryption")
    if k is None:
        raise CryptoError("no encryption key: pass --key-base64-rijndael/--key-rijndael or -n STANZA")
    hk = key_from(get, "HMAC_KEY", "HMAC_KEY_BASE64", "HMAC")
    s = None
    try:
        s = get("ENCRYPTION_MODE")
        mode = mode_name(str(s.value)) if s else "cbc"
        s = get("HMAC_DIGEST_TYPE")
        hmac_type = digest_name(str(s.value)) if s else "sha256"
    except SpaError as exc:
        raise UsageError("%s: %s" % (s.where, exc))
    return k, hk, mode, hmac_type


def cmd_decode(args) -> int:
    _one_packet_aes()
    k, hk, mode, hmac_type = _decode_keys(args)
    data = args.data
    if data is None or data == "-":
        data = sys.stdin.read()
    data = data.strip()
    try:
        plaintext = wire.unseal(data, k, mode, hk, hmac_type)
        msg = core_message.decode(plaintext)
    except SpaError as exc:
        raise CryptoError("cannot decode: %s" % exc)
    if args.json:
        obj = msg.as_dict()
        obj["encryption_mode"] = mode
        obj["hmac_type"] = hmac_type if hk is not None else None
        import json
        sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    else:
        sys.stdout.write(format_fields(msg, mode, hmac_type if hk is not None else None,
                                       plaintext, data))
    return 0
