"""The decision for one candidate packet: a pure function of (candidate, stanzas, options,
replay cache, now), in fwknopd's order but with the cheap checks first.

1. length and alphabet, the salted-prefix and GnuPG-prefix rules        -> junk
2. some stanza's SOURCE/DESTINATION must match the IP header              -> junk
3. replay lookup on the canonical digest (O(1))                           -> replay
4. per matching stanza, in file order: expiry, HMAC (constant time) before any decryption,
   decrypt, decode; the first successful decrypt records the digest (as fwknopd, before the
   age check); then age, state-loss floor, allow IP, username, NAT permission, command or
   CMD_CYCLE, port lists. The first stanza that passes everything wins.
A packet that never authenticates against any stanza is ``junk``; one that authenticates but
is refused is ``reject`` with the first stanza's refusal as the reason.
"""

from spa_lite.core import fields, limits, message, wire
from spa_lite.core.b64 import is_b64_text
from spa_lite.core.errors import SpaError
from spa_lite.server import gpgspa
from spa_lite.server.model import (VERDICT_COMMAND, VERDICT_GRANT, VERDICT_JUNK, VERDICT_PENDING,
                                   VERDICT_REJECT, VERDICT_REPLAY, Decision, Grant,
                                   strict_address)
from spa_lite.server.replay import replay_key

_PREFIX = limits.B64_RIJNDAEL_SALT.encode()
_GPG_PREFIX = b"hQ"


class PolicyOptions:
    """fwknopd.conf switches the policy needs (plain values, no I/O)."""

    def __init__(self, aging: bool = True, max_age: int = 120, replay_check: bool = True,
                 forwarding: bool = False, local_nat: bool = False, test_mode: bool = False,
                 use_xff: bool = False, destination_rule: bool = False, resolve=None,
                 gpg=None) -> None:
        self.aging = aging
        self.max_age = max_age
        self.replay_check = replay_check
        self.forwarding = forwarding
        self.local_nat = local_nat
        self.test_mode = test_mode
        self.use_xff = use_xff
        self.destination_rule = destination_rule
        self.resolve = resolve   # callable(hostname) -> IP text or None (ENABLE_NAT_DNS)
        self.gpg = gpg           # runs gpg for GnuPG stanzas (server/gpgspa.py), or None


def precheck(payload: bytes):
    """Reason string if the payload is not SPA data at all, else None (no crypto involved)."""
    n = len(payload)
    if n < limits.MIN_SPA_DATA_SIZE or n > limits.MAX_SPA_PACKET_LEN:
        return "length %d outside %d..%d" % (n, limits.MIN_SPA_DATA_SIZE, limits.MAX_SPA_PACKET_LEN)
    if payload.startswith(_PREFIX):
        return "starts with the salted prefix U2FsdGVkX1 (re-encoded replay?)"
    if n > limits.MIN_GNUPG_MSG_SIZE and payload.startswith(_GPG_PREFIX):
        return "starts with the GnuPG prefix hQ (re-encoded replay?)"
    if not is_b64_text(payload):
        return "not base64 data"
    if n < limits.MIN_GNUPG_MSG_SIZE and not wire.first_char_ok(payload):
        # a Rijndael-length payload; GnuPG data continues 'hQ' instead (server/gpgspa.py)
        return "does not continue the salted prefix (re-encoded replay?)"
    return None


def _refuse(reason: str, st, msg) -> Decision:
    return Decision(VERDICT_REJECT, reason, st.number, msg.username, msg.message, message=msg)


def _ports_allowed(st, requested):
    for proto, port in requested:
        if proto not in ("tcp", "udp"):
            return "protocol %s is not grantable (tcp or udp only)" % proto
        if (proto, port) in st.restrict_ports:
            return "%s/%d is in RESTRICT_PORTS" % (proto, port)
        if st.open_ports is not None and (proto, port) not in st.open_ports:
            return "%s/%d is not in OPEN_PORTS" % (proto, port)
    return None


def _nat_target(host: str, opts):
    """A strict literal, typed or resolved (ENABLE_NAT_DNS), or None."""
    addr = strict_address(host)
    if addr is None and opts.resolve:
        addr = strict_address(opts.resolve(host))
    return addr


def evaluate_stanza(st, cand, msg, opts, now: int):
    """Decision for an authenticated message against one stanza, or a refusal Decision."""
    ts = msg.timestamp
    if opts.aging and abs(now - ts) > opts.max_age:
        return _refuse("time difference %d s exceeds MAX_SPA_PACKET_AGE %d"
                       % (now - ts, opts.max_age), st, msg)
    mtype = msg.message_type
    if mtype == fields.COMMAND_MSG:
        allow_ip, command = fields.parse_command(msg.message)
        requested = []
    else:
        allow_ip, requested = fields.parse_access(msg.message)
        command = None
    if allow_ip == "0.0.0.0":
        if st.require_source_address:
            return _refuse("allow IP 0.0.0.0 but REQUIRE_SOURCE_ADDRESS is set", st, msg)
        if opts.use_xff and cand.xff is not None:
            allow_ip = strict_address(cand.xff)
            if allow_ip is None:
                return _refuse("X-Forwarded-For %r is not an IPv4/IPv6 address literal"
                               % cand.xff, st, msg)
        else:
            allow_ip = cand.src
    # Every address that reaches a backend is a strict literal, whatever its origin.
    allow_ip = strict_address(allow_ip)
    if allow_ip is None:
        return _refuse("allow IP is not an IPv4/IPv6 address literal", st, msg)
    if st.require_username is not None and msg.username != st.require_username:
        return _refuse("username %r does not match REQUIRE_USERNAME" % msg.username, st, msg)
    if mtype in (fields.NAT_ACCESS_MSG, fields.CLIENT_TIMEOUT_NAT_ACCESS_MSG) and not opts.forwarding:
        return _refuse("NAT access message but ENABLE_IPT_FORWARDING is off", st, msg)
    if mtype in fields.LOCAL_NAT_TYPES and not opts.local_nat:
        return _refuse("local NAT message but ENABLE_IPT_LOCAL_NAT is off", st, msg)

    timeout = st.fw_access_timeout
    if msg.client_timeout:
        timeout = min(msg.client_timeout, st.max_fw_timeout)

    if st.cmd_cycle_open:
        # as fwknopd, which cannot build the command: $PORT/$PROTO need a tcp or udp port
        if mtype == fields.COMMAND_MSG:
            return _refuse("command message for a CMD_CYCLE_OPEN stanza", st, msg)
        bad = [p for p in requested if p[0] not in ("tcp", "udp")]
        if bad:
            return _refuse("CMD_CYCLE_OPEN needs tcp or udp ports for $PORT/$PROTO, not %s/%d"
                           % bad[0], st, msg)
        t = msg.client_timeout or st.cmd_cycle_timer or timeout
        return Decision(VERDICT_GRANT, "CMD_CYCLE_OPEN", st.number, msg.username, msg.message,
                        Grant(allow_ip, requested, now + t, "cmd_cycle", stanza=st.number,
                              user=msg.username, dst=cand.dst),
                        command=st.cmd_cycle_open, message=msg, timeout=t)
    if mtype == fields.COMMAND_MSG:
        if not st.enable_cmd_exec:
            return _refuse("command message but ENABLE_CMD_EXEC is off", st, msg)
        return Decision(VERDICT_COMMAND, "command", st.number, msg.username, msg.message,
                        command=command, message=msg)

    bad = _ports_allowed(st, requested)
    if bad:
        return _refuse(bad, st, msg)

    kind, nat_ip, nat_port = "access", None, None
    if st.forward_all:
        kind, nat_ip = "forward_all", "0.0.0.0"
    elif st.force_nat:
        nat_ip, nat_port = st.force_nat
        kind = "nat" if opts.forwarding else "local_nat"
        if not (opts.forwarding or opts.local_nat):
            return _refuse("FORCE_NAT needs ENABLE_IPT_FORWARDING or ENABLE_IPT_LOCAL_NAT", st, msg)
    elif msg.nat_access:
        host, nat_port = fields.parse_nat(msg.nat_access)
        nat_ip = _nat_target(host, opts)
        if nat_ip is None:
            return _refuse("cannot resolve NAT host %r" % host, st, msg)
        kind = "local_nat" if mtype in fields.LOCAL_NAT_TYPES else "nat"
    grant = Grant(allow_ip, requested, now + timeout, kind, nat_ip, nat_port,
                  snat=st.force_snat, masquerade=st.force_masquerade, dnat=not st.disable_dnat,
                  stanza=st.number, user=msg.username,
                  dst=cand.dst if opts.destination_rule else None)
    return Decision(VERDICT_GRANT, "access granted", st.number, msg.username, msg.message,
                    grant, message=msg, timeout=timeout)


def decide(cand, stanzas, opts, replay, now: int, trace=None) -> Decision:
    """The verdict for one Candidate; never raises on packet content. With a list as
    ``trace``, one entry per stanza tried that did not grant, saying why (-v)."""
    payload = cand.payload
    bad = precheck(payload)
    if bad:
        return Decision(VERDICT_JUNK, bad)
    src, dst = cand.keys
    matching = [st for st in stanzas if st.matches_keys(src, dst)]
    if not matching:
        return Decision(VERDICT_JUNK, "no access stanza for source %s" % cand.src)
    digest = None
    if opts.replay_check and not replay.empty():
        digest = replay_key(payload)
        if replay.seen_payload(payload, digest, now):
            return Decision(VERDICT_REPLAY, "replay of a packet already accepted")

    last_error = None
    refusal = None
    recorded = False
    for st in matching:
        if st.access_expire is not None and now > st.access_expire:
            last_error = last_error or "stanza %d expired (ACCESS_EXPIRE)" % st.number
            if trace is not None:
                _trace(trace, st, "expired (ACCESS_EXPIRE)")
            continue
        gpg = None
        if st.gpg and len(payload) >= limits.MIN_GNUPG_MSG_SIZE:   # GnuPG: server/gpgspa.py
            gpg = gpgspa.open_message(st, cand, payload, opts.gpg, replay, now)
            if gpg.pending or gpg.replay:
                return Decision(VERDICT_PENDING, "queued for gpg") if gpg.pending else \
                    Decision(VERDICT_REPLAY, "replay of a GnuPG message already accepted")
            if gpg.msg is None:
                last_error = gpg.error
                if trace is not None:
                    _trace(trace, st, last_error)
                continue
            msg = gpg.msg
        elif len(payload) >= limits.MIN_GNUPG_MSG_SIZE and not st.enable_cmd_exec:
            last_error = last_error or "too long for a Rijndael packet"
            if trace is not None:
                _trace(trace, st, "too long for a Rijndael packet")
            continue
        elif st.key is None:
            last_error = last_error or "stanza %d has GnuPG settings only" % st.number
            if trace is not None:
                _trace(trace, st, "GnuPG settings only")
            continue
        elif st.hmac_key is not None and not wire.hmac_ok(payload, st.hmac_key, st.hmac_type,
                                                          st.mac_function()):
            last_error = "HMAC verification failed"     # junk stops here, before any decryption
            if trace is not None:
                _trace(trace, st, last_error)
            continue
        if gpg is None:
            try:
                msg = message.decode(wire.unseal(payload, st.key, st.mode, st.hmac_key,
                                                 st.hmac_type, hmac_checked=True))
            except SpaError as exc:
                last_error = {"hmac": "HMAC verification failed",
                              "decrypt": "decryption failed (wrong key or mode)"}.get(exc.code, str(exc))
                if trace is not None:
                    _trace(trace, st, last_error)
                continue
        if opts.replay_check and not recorded:
            recorded = True
            if not replay.add(digest or replay_key(payload), msg.timestamp, now,
                              persist=not opts.test_mode) or (
                    gpg is not None and not replay.add(gpg.plaintext_key, msg.timestamp, now,
                                                       persist=not opts.test_mode)):
                return _refuse("the replay record cannot be written to the digest file, so a "
                               "grant could be replayed after a restart", st, msg)
        if gpg is not None and gpg.refusal:
            refusal = refusal or _refuse(gpg.refusal, st, msg)
            continue
        if replay.below_floor(msg.timestamp, now):
            return _refuse("stamped before the replay floor (%s; see "
                           "REPLAY_GUARD_AFTER_STATE_LOSS)" % replay.loss_reason, st, msg)
        d = evaluate_stanza(st, cand, msg, opts, now)
        if d.verdict != VERDICT_REJECT:
            return d
        if trace is not None:
            _trace(trace, st, d.reason)
        refusal = refusal or d
    if refusal is not None:
        return refusal
    return Decision(VERDICT_JUNK, last_error or "no matching stanza")


def _trace(trace, st, reason: str) -> None:
    """-v/--verbose: record why a stanza did not grant (callers skip it when ``trace`` is
    None: this is the junk path, run per packet of a flood)."""
    trace.append("stanza %d (%s): %s" % (st.number, st.where, reason))
