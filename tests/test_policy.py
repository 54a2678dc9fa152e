"""The per-packet decision, as a table: real packets (built by the core with fixed salt and
random value) against access stanzas, checking verdict, reason and the grant."""

import pytest
from hypothesis import given, settings, strategies as st

from spa_lite.core import message, wire
from spa_lite.core.b64 import b64decode_key
from spa_lite.server.config import parse_access
from spa_lite.server.model import Candidate
from spa_lite.server.policy import PolicyOptions, decide
from spa_lite.server.replay import ReplayCache
from tests.conftest import HMAC_KEY_B64, KEY_B64

K = b64decode_key(KEY_B64)
H = b64decode_key(HMAC_KEY_B64)
NOW = 1_800_000_000
SALT = bytes(range(8))


def packet(msg="10.0.0.5,tcp/22", mtype=1, ts=NOW, user="alice", nat=None, timeout=None,
           key=K, hmac_key=H, mode="cbc", rand="1234567890123456"):
    m = message.SpaMessage(rand, user, ts, mtype, msg, nat, None, timeout)
    return wire.build(m, key, SALT, mode, hmac_key).encode()


def stanzas(text):
    return parse_access("t.conf", [], text=text)


BASE = "SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n" % (KEY_B64, HMAC_KEY_B64)


def run(payload, conf=BASE, src="10.0.0.5", dst="10.213.0.1", now=NOW, opts=None, cache=None):
    cache = cache if cache is not None else ReplayCache()
    c = Candidate(src, dst, "udp", 40000, 62201, payload, now)
    return decide(c, stanzas(conf), opts or PolicyOptions(), cache, now)


def test_grant_with_default_timeout():
    d = run(packet())
    assert (d.verdict, d.stanza, d.user, d.access) == ("grant", 1, "alice", "10.0.0.5,tcp/22")
    g = d.grant
    assert (g.address, g.ports, g.expires, g.kind) == ("10.0.0.5", [("tcp", 22)], NOW + 30, "access")


def test_client_timeout_is_capped_by_max_fw_timeout():
    d = run(packet(timeout=1000), BASE + "MAX_FW_TIMEOUT 120\n")
    assert d.verdict == "grant" and d.timeout == 120 and d.grant.expires == NOW + 120
    d = run(packet(timeout=50), BASE + "FW_ACCESS_TIMEOUT 10\n")
    assert d.timeout == 50


def test_replay_and_reencoded_replay():
    cache = ReplayCache()
    p = packet()
    assert run(p, cache=cache).verdict == "grant"
    assert run(p, cache=cache).verdict == "replay"
    assert run(p + b"==", cache=cache).verdict == "replay"
    nohmac_conf = "SOURCE ANY\nKEY_BASE64 %s\n" % KEY_B64
    q = packet(hmac_key=None, rand="1111111111111111")
    cache2 = ReplayCache()
    assert run(q, nohmac_conf, cache=cache2).verdict == "grant"
    # fwknopd 2.6.10 accepts this again (protocol notes, section 2); spa-lite must not
    assert run(q + b"==", nohmac_conf, cache=cache2).verdict == "replay"
    assert run(q + b"=", nohmac_conf, cache=cache2).verdict == "replay"


def test_replay_digest_only_when_there_is_something_to_look_up(monkeypatch):
    """Junk against an empty cache costs no SHA-256; once a packet is recorded, every
    packet is looked up again, and a grant records its digest even from an empty cache."""
    from spa_lite.server import policy
    calls = []
    real = policy.replay_key
    monkeypatch.setattr(policy, "replay_key", lambda p: calls.append(p) or real(p))
    cache = ReplayCache()
    junk = packet(hmac_key=b"another hmac key that is wrong")
    assert run(junk, cache=cache).verdict == "junk" and calls == []
    p = packet()
    assert run(p, cache=cache).verdict == "grant" and calls == [p]
    assert run(junk, cache=cache).verdict == "junk" and calls == [p, junk]
    assert run(p, cache=cache).verdict == "replay"


@pytest.mark.parametrize("payload,needle", [
    (b"A" * 139, "length"),
    (b"A" * 1501, "length"),
    (b"U2FsdGVkX1" + b"A" * 200, "prefix"),
    (b"hQ" + b"A" * 500, "GnuPG"),
    (b"A" * 150 + b"\n", "base64"),
    (b"A" * 150 + b" ", "base64"),
])
def test_junk_before_any_crypto(payload, needle):
    d = run(payload)
    assert d.verdict == "junk" and needle.lower() in d.reason.lower()


def test_prefix_readded_replay_is_refused():
    p = packet()
    d = run(b"U2FsdGVkX1" + p)
    assert d.verdict == "junk" and "prefix" in d.reason


def test_source_and_destination_matching():
    d = run(packet(), "SOURCE 192.168.0.0/16\n" + BASE.split("\n", 1)[1])
    assert d.verdict == "junk" and "no access stanza" in d.reason
    d = run(packet(), BASE + "DESTINATION 10.213.0.9\n")
    assert d.verdict == "junk"
    d = run(packet(), BASE + "DESTINATION 10.213.0.0/24\n")
    assert d.verdict == "grant"


def test_wrong_keys_are_junk():
    assert "HMAC" in run(packet(hmac_key=b"x" * 32)).reason
    d = run(packet(key=b"wrongkey"))                       # HMAC right, encryption key wrong
    assert d.verdict == "junk" and "decryption" in d.reason
    nohmac = "SOURCE ANY\nKEY_BASE64 %s\n" % KEY_B64
    d = run(packet(key=b"wrongkey", hmac_key=None), nohmac)
    assert d.verdict == "junk" and "decryption" in d.reason


def test_age_window_and_digest_recorded_before_age_check():
    cache = ReplayCache()
    old = packet(ts=NOW - 500)
    d = run(old, cache=cache)
    assert d.verdict == "reject" and "time difference" in d.reason
    assert run(old, cache=cache).verdict == "replay"       # as fwknopd: cached anyway
    assert run(packet(ts=NOW + 100, rand="2222222222222222")).verdict == "grant"
    assert run(packet(ts=NOW + 121, rand="3333333333333333")).verdict == "reject"
    d = run(packet(ts=NOW - 5000, rand="4444444444444444"), opts=PolicyOptions(aging=False))
    assert d.verdict == "grant"


def test_first_fully_matching_stanza_wins():
    conf = BASE + "REQUIRE_USERNAME bob\n" + BASE + "OPEN_PORTS tcp/22\n"
    d = run(packet(), conf)
    assert d.verdict == "grant" and d.stanza == 2
    d = run(packet(rand="5555555555555555"), BASE + "REQUIRE_USERNAME bob\n")
    assert d.verdict == "reject" and "REQUIRE_USERNAME" in d.reason and d.stanza == 1


def test_allow_ip_zero_uses_source_unless_required():
    d = run(packet("0.0.0.0,tcp/22"), src="198.51.100.7")
    assert d.grant.address == "198.51.100.7"
    d = run(packet("0.0.0.0,tcp/22", rand="6666666666666666"), BASE + "REQUIRE_SOURCE_ADDRESS Y\n")
    assert d.verdict == "reject" and "REQUIRE_SOURCE_ADDRESS" in d.reason


@pytest.mark.parametrize("extra,msg,verdict,needle", [
    ("OPEN_PORTS tcp/22\n", "10.0.0.5,tcp/22,udp/53", "reject", "not in OPEN_PORTS"),
    ("OPEN_PORTS tcp/22, udp/53\n", "10.0.0.5,tcp/22,udp/53", "grant", "granted"),
    ("RESTRICT_PORTS udp/53\n", "10.0.0.5,tcp/22,udp/53", "reject", "RESTRICT_PORTS"),
    ("", "10.0.0.5,icmp/8", "reject", "tcp or udp only"),
])
def test_port_lists(extra, msg, verdict, needle):
    d = run(packet(msg), BASE + extra)
    assert d.verdict == verdict and needle in d.reason


def test_nat_needs_forwarding_and_builds_grant():
    p = packet(mtype=2, nat="192.168.1.20,22")
    d = run(p)
    assert d.verdict == "reject" and "ENABLE_IPT_FORWARDING" in d.reason
    d = run(p, opts=PolicyOptions(forwarding=True))
    g = d.grant
    assert (d.verdict, g.kind, g.nat_ip, g.nat_port) == ("grant", "nat", "192.168.1.20", 22)
    local = packet("10.0.0.5,tcp/55000", mtype=5, nat="10.213.0.1,22", rand="7777777777777777")
    assert run(local).verdict == "reject"
    d = run(local, opts=PolicyOptions(local_nat=True))
    assert (d.grant.kind, d.grant.ports, d.grant.nat_port) == ("local_nat", [("tcp", 55000)], 22)
    d = run(packet(rand="8888888888888888"), BASE + "FORCE_NAT 192.168.1.30 2222\n",
            opts=PolicyOptions(forwarding=True))
    assert (d.grant.kind, d.grant.nat_ip, d.grant.nat_port) == ("nat", "192.168.1.30", 2222)


def test_command_messages_need_enable_cmd_exec():
    p = packet("10.0.0.5,echo hello", mtype=0)
    d = run(p)
    assert d.verdict == "reject" and "ENABLE_CMD_EXEC" in d.reason
    d = run(packet("10.0.0.5,echo hello", mtype=0, rand="9999999999999999"),
            BASE + "ENABLE_CMD_EXEC Y\n")
    assert d.verdict == "command" and d.command == "echo hello"


def test_cmd_cycle_skips_port_checks():
    conf = BASE + "OPEN_PORTS tcp/1\nCMD_CYCLE_OPEN /bin/true $IP\nCMD_CYCLE_TIMER 9\n"
    d = run(packet(), conf)
    assert d.verdict == "grant" and d.command == "/bin/true $IP" and d.timeout == 9


def test_expired_stanza_is_skipped():
    d = run(packet(), BASE + "ACCESS_EXPIRE_EPOCH %d\n" % (NOW - 1))
    assert d.verdict == "junk" and "expired" in d.reason


def test_state_loss_floor(tmp_path):
    # the digest file vanished in a reboot 10 s ago: the daemon has just started
    boot = NOW - 10
    clock = {"now": NOW}
    cache = ReplayCache(str(tmp_path / "missing"), max_age=120,
                        uptime=lambda: clock["now"] - boot, boot_id=lambda: "b",
                        guard_state_loss="boot")
    cache.load(NOW)
    d = run(packet(ts=NOW - 15), cache=cache)      # captured before the reboot
    assert d.verdict == "reject" and "replay floor" in d.reason
    clock["now"] = NOW + 115
    d = run(packet(ts=NOW + 115, rand="1212121212121212"), now=NOW + 115, cache=cache)
    assert d.verdict == "grant"


def test_ipv6_allow_address_and_source():
    d = run(packet("2001:db8::7,tcp/22"), src="2001:db8::7", dst="2001:db8::1")
    assert d.verdict == "grant" and d.grant.address == "2001:db8::7"
    d = run(packet("0.0.0.0,tcp/22", rand="1313131313131313"), src="2001:db8::9", dst="2001:db8::1")
    assert d.grant.address == "2001:db8::9"


def test_timestamps_past_2038():
    later = 2_200_000_000
    d = run(packet(ts=later), now=later)
    assert d.verdict == "grant" and d.grant.expires == later + 30


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=1600))
def test_arbitrary_payloads_never_raise(payload):
    d = run(payload)
    assert d.verdict in ("junk", "replay", "reject")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
               min_size=140, max_size=600))
def test_arbitrary_base64_never_raises(text):
    d = run(text.encode())
    assert d.verdict == "junk"


def test_cmd_cycle_refuses_what_fwknopd_cannot_build_a_command_for():
    """$PORT/$PROTO need a tcp or udp port: command messages, icmp and none are refused
    (they were granted, and CMD_CYCLE_OPEN ran with an empty $PORT/$PROTO)."""
    conf = BASE + "CMD_CYCLE_OPEN /bin/true $IP $PORT $PROTO\nCMD_CYCLE_TIMER 9\nENABLE_CMD_EXEC Y\n"
    for i, (msg, mtype) in enumerate([("10.0.0.5,echo hi", 0), ("10.0.0.5,icmp/1", 1),
                                      ("10.0.0.5,none/1", 1), ("10.0.0.5,tcp/22,icmp/8", 1)]):
        d = run(packet(msg, mtype=mtype, rand="%016d" % (4242 + i)), conf)
        assert d.verdict == "reject" and "CMD_CYCLE_OPEN" in d.reason, (msg, d.reason)
    d = run(packet("10.0.0.5,udp/53", rand="5151515151515151"), conf)
    assert d.verdict == "grant" and d.grant.ports == [("udp", 53)]


def test_source_with_prefix_zero_is_refused_with_its_line(tmp_path):
    from spa_lite.server.config import ConfigError, parse_access
    p = tmp_path / "a.conf"
    p.write_text("SOURCE 10.0.0.2/0\nKEY_BASE64 %s\n" % KEY_B64)
    with pytest.raises(ConfigError) as e:
        parse_access(str(p), [])
    assert str(e.value).startswith("%s:1: SOURCE" % p) and "ANY" in str(e.value)
    for ok in ("0.0.0.0/0", "::/0", "ANY", "10.0.0.0/8"):
        p.write_text("SOURCE %s\nKEY_BASE64 %s\n" % (ok, KEY_B64))
        parse_access(str(p), [])
    for bad in ("fe80::1%eth0", "10.0.0.1/", "10.0.0.1/x", "010.0.0.1"):
        p.write_text("SOURCE %s\nKEY_BASE64 %s\n" % (bad, KEY_B64))
        with pytest.raises(ConfigError):
            parse_access(str(p), [])
