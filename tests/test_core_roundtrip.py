"""Property tests: every message type, mode, digest and HMAC type survives build -> parse,
and the plaintext codec and base64 helpers are exact inverses."""

import binascii

import pytest
from hypothesis import assume, given, settings, strategies as st

from spa_lite.core import fields, message, wire
from spa_lite.core.b64 import b64decode, b64decode_key, b64encode, b64encode_padded
from spa_lite.core.digests import DIGEST_TYPES
from spa_lite.core.errors import SpaError

MODES = ["cbc", "ecb", "cfb", "ofb", "ctr", "legacy"]
DIGESTS = sorted(DIGEST_TYPES)
USER_CHARS = "".join(c for c in map(chr, range(0x20, 0x7f)) if c not in '"/\\[]:;|=,+*?<>')

ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: "%d.%d.%d.%d" % t)
ipv6 = st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(
    lambda g: ":".join("%x" % x for x in g))
proto_port = st.tuples(st.sampled_from(["tcp", "udp", "icmp", "none"]),
                       st.integers(1, 65535)).map(lambda t: "%s/%d" % t)
users = st.text(USER_CHARS, min_size=1, max_size=16)
hosts = st.text("abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=30)


@st.composite
def messages(draw):
    mtype = draw(st.integers(0, 6))
    allow = draw(st.one_of(ipv4, ipv6, st.just("0.0.0.0")))
    if mtype == 0:
        text = allow + "," + draw(st.text(USER_CHARS + " ", min_size=1, max_size=40))
    else:
        text = allow + "," + ",".join(draw(st.lists(proto_port, min_size=1, max_size=3)))
    nat = None
    if mtype in fields.NAT_TYPES:
        nat = "%s,%d" % (draw(st.one_of(ipv4, hosts)), draw(st.integers(1, 65535)))
    timeout = draw(st.integers(1, 65536)) if mtype in fields.TIMEOUT_TYPES else None
    return message.SpaMessage(
        draw(st.text("0123456789", min_size=16, max_size=16)), draw(users),
        draw(st.integers(0, 10 ** 12 - 1)), mtype, text, nat,
        draw(st.one_of(st.none(), st.text(USER_CHARS, min_size=1, max_size=20))), timeout,
        draw(st.sampled_from(["3.0.0", "2.0.4", "1.9.12"])), draw(st.sampled_from(DIGESTS)))


@settings(max_examples=300, deadline=None)
@given(messages())
def test_plaintext_roundtrip(m):
    text = message.encode(m)
    assert message.decode(text) == m


@settings(max_examples=250, deadline=None)
@given(messages(), st.sampled_from(MODES), st.sampled_from(DIGESTS),
       st.one_of(st.binary(min_size=1, max_size=32), st.text(USER_CHARS, min_size=1, max_size=32)
                 .map(str.encode)),
       st.binary(min_size=1, max_size=128), st.binary(min_size=8, max_size=8))
def test_wire_roundtrip(m, mode, hmac_type, key, hkey, salt):
    assume(hkey != key)
    if mode == "legacy":
        hkey = None
    try:
        w = wire.build(m, key, salt, mode, hkey, hmac_type)
    except SpaError as exc:           # only the 400-character limit may refuse a valid message
        assert exc.code == "length"
        return
    assert len(w) < 400 or m.message_type == 0
    assert wire.parse(w, key, mode, hkey, hmac_type) == m


@pytest.mark.parametrize("d1,d2", [("sha256", "sha3_256"), ("sha512", "sha3_512")])
def test_sha2_sha3_ambiguity_resolved_by_trying_both(d1, d2):
    for d in (d1, d2):
        m = message.SpaMessage("1" * 16, "u", 1, 1, "1.2.3.4,tcp/1", digest_type=d)
        assert message.decode(message.encode(m)).digest_type == d


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_b64_helpers(data):
    enc = b64encode(data)
    assert "=" not in enc and enc == binascii.b2a_base64(data, newline=False).decode().rstrip("=")
    assert b64decode(enc) == data
    assert b64decode(enc + "==") == data               # padding left in is accepted
    padded = b64encode_padded(data)
    if data:
        assert b64decode_key(padded) == data and b64decode_key(enc) == data


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10 ** 12 - 1))
def test_timestamps_beyond_2038(ts):
    m = message.SpaMessage("1" * 16, "u", ts, 1, "1.2.3.4,tcp/1")
    assert message.decode(message.encode(m)).timestamp == ts


def test_type_switches_with_timeout():
    m = message.SpaMessage("1" * 16, "u", 1, 1, "1.2.3.4,tcp/1", client_timeout=30)
    assert message.decode(message.encode(m)).message_type == 3
    m = message.SpaMessage("1" * 16, "u", 1, 4, "1.2.3.4,tcp/1", nat_access="h,1", client_timeout=0)
    assert message.decode(message.encode(m)).message_type == 2
