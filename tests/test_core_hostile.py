"""Hostile input: every malformed, truncated, re-encoded or tampered packet is refused with a
reason (SpaError and its code), never another exception."""

import pytest
from hypothesis import given, settings, strategies as st

from spa_lite.core import message, wire
from spa_lite.core.b64 import b64decode_key, b64encode
from spa_lite.core.digests import digest_b64
from spa_lite.core.errors import SpaError
from tests.conftest import HMAC_KEY_B64, KEY_B64

K = b64decode_key(KEY_B64)
H = b64decode_key(HMAC_KEY_B64)
GOOD_MSG = message.SpaMessage("1234567890123456", "spauser", 1700000000, 1, "127.0.0.2,tcp/22")
GOOD = wire.build(GOOD_MSG, K, bytes(8), "cbc", H)
GOOD_NOHMAC = wire.build(GOOD_MSG, K, bytes(8), "cbc")


def code_of(fn, *args):
    with pytest.raises(SpaError) as e:
        fn(*args)
    return e.value.code


@pytest.mark.parametrize("data,codes", [
    (GOOD[:30], {"length"}),
    (GOOD[:100], {"hmac"}),
    (GOOD * 7, {"length"}),
    (GOOD + "\n", {"alphabet"}),
    (GOOD + " ", {"alphabet"}),
    (GOOD[:50] + "*" + GOOD[51:], {"alphabet"}),
    ("U2FsdGVkX1" + GOOD, {"prefix"}),
    (GOOD + "==", {"hmac"}),
    (GOOD[:-1], {"hmac"}),
])
def test_malformed_with_hmac(data, codes):
    assert code_of(wire.parse, data, K, "cbc", H) in codes


def test_wrong_keys_types_and_modes():
    assert code_of(wire.parse, GOOD, K, "cbc", b"other hmac key") == "hmac"
    assert code_of(wire.parse, GOOD, K, "cbc", H, "sha512") in ("hmac", "length")
    assert code_of(wire.parse, GOOD, K, "cbc", H, "md5") == "hmac"
    assert code_of(wire.parse, GOOD, b"wrong", "cbc", H) == "decrypt"
    assert code_of(wire.parse, GOOD, K, "ecb", H) == "decrypt"
    assert code_of(wire.parse, GOOD_NOHMAC, b"wrong", "cbc") == "decrypt"
    assert code_of(wire.parse, GOOD, K, "cbc", K) == "key"          # identical keys refused


def test_every_bit_flip_is_caught():
    raw = GOOD.encode()
    for i in range(len(raw)):
        for bit in range(7):
            flipped = bytearray(raw)
            flipped[i] ^= 1 << bit
            try:
                wire.parse(bytes(flipped), K, "cbc", H)
            except SpaError as exc:
                assert exc.code in ("hmac", "alphabet", "base64", "prefix", "length"), exc.code
            else:
                raise AssertionError("bit %d of byte %d flipped and still accepted" % (bit, i))


def forge(text):
    """A plaintext with a correct digest, encrypted: tests the decoder behind the crypto."""
    full = text + ":" + digest_b64("sha256", text.encode())
    return wire.seal(full, K, bytes(8), "cbc", H)


U = b64encode(b"spauser")
M = b64encode(b"127.0.0.2,tcp/22")


@pytest.mark.parametrize("text,code", [
    ("123456789012345:%s:1700000000:3.0.0:1:%s" % (U, M), "decrypt"),       # 15-digit random
    ("1234567890123456:%s:17000x0000:3.0.0:1:%s" % (U, M), "field"),
    ("1234567890123456:%s:1234567890123:3.0.0:1:%s" % (U, M), "field"),      # 13 digits
    ("1234567890123456:%s:1700000000:3.0.0.00000:1:%s" % (U, M), "field"),   # version > 8
    ("1234567890123456:%s:1700000000:3.0.0:7:%s" % (U, M), "field"),
    ("1234567890123456:%s:1700000000:3.0.0:1:%s:a:b" % (U, M), "field"),    # too many fields
    ("1234567890123456:%s:1700000000:3.0.0:2:%s" % (U, M), "field"),        # NAT missing
    ("1234567890123456:%s:1700000000:3.0.0:3:%s" % (U, M), "field"),        # timeout missing
    ("1234567890123456:%s:1700000000:3.0.0:3:%s:65537" % (U, M), "field"),
    ("1234567890123456:%s:1700000000:3.0.0:1:%s" % (b64encode(b"a/b"), M), "field"),
    ("1234567890123456:%s:1700000000:3.0.0:1:%s" % (b64encode(b"x" * 49), M), "field"),
    ("1234567890123456:%s:1700000000:3.0.0:1:%s" % (U, b64encode(b"127.0.0.2,tcp/0")), "field"),
    ("1234567890123456:%s:1700000000:3.0.0:1:%s" % (U, b64encode(b"127.0.0.2,foo/22")), "field"),
    ("1234567890123456:%s:1700000000:3.0.0:1:%s" % (U, b64encode(b"300.0.0.2,tcp/22")), "field"),
    ("1234567890123456:%s:1700000000:3.0.0:2:%s:%s" % (U, M, b64encode(b"10.0.0.1:22")), "field"),
    ("1234567890123456::1700000000:3.0.0:1:%s" % M, "field"),
])
def test_decoder_rejects(text, code):
    assert code_of(wire.parse, forge(text), K, "cbc", H) == code


def test_digest_mismatch_and_unknown_length():
    text = "1234567890123456:%s:1700000000:3.0.0:1:%s" % (U, M)
    bad = wire.seal(text + ":" + "A" * 43, K, bytes(8), "cbc", H)
    assert code_of(wire.parse, bad, K, "cbc", H) == "digest"
    bad = wire.seal(text + ":" + "A" * 40, K, bytes(8), "cbc", H)
    assert code_of(wire.parse, bad, K, "cbc", H) == "digest"


def test_encoder_refuses_what_fwknopd_would_reject():
    long_access = "127.0.0.2," + ",".join("tcp/%d" % p for p in range(10000, 10012))
    m = message.SpaMessage("1234567890123456", "u", 1, 1, long_access)
    assert code_of(wire.build, m, K, bytes(8), "cbc", H, "sha512") == "length"
    m = message.SpaMessage("1234567890123456", "u" * 49, 1, 1, "1.2.3.4,tcp/1")
    assert code_of(message.encode, m) == "field"
    assert code_of(wire.build, GOOD_MSG, K, bytes(8), "legacy", H) == "param"
    assert code_of(wire.build, GOOD_MSG, b"k" * 33, bytes(8), "cbc", H) == "key"


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=1600), st.text(max_size=600)))
def test_fuzz_parse_raises_only_spaerror(data):
    for hk in (H, None):
        try:
            wire.parse(data, K, "cbc", hk)
        except SpaError:
            pass


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_decode_raises_only_spaerror(text):
    try:
        message.decode(text)
    except SpaError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=:",
                        max_size=30), min_size=1, max_size=12))
def test_fuzz_structured_plaintexts(parts):
    text = ":".join(parts)
    try:
        message.decode(text + ":" + digest_b64("sha256", text.encode()))
    except SpaError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=40), st.binary(min_size=0, max_size=200),
       st.sampled_from(["cbc", "ctr", "legacy"]), st.binary(min_size=8, max_size=8))
def test_any_decrypted_bytes_raise_only_spaerror(head, tail, mode, salt):
    """Whatever decrypts (a no-HMAC stanza decrypts everything), the core answers with a
    SpaError: 16 non-UTF-8 bytes then ':' once escaped as UnicodeDecodeError and skipped
    the remaining stanzas."""
    from spa_lite.core.cipher import encrypt_salted
    for pt in (head + tail, head[:16].ljust(16, b"\xff") + b":" + tail):
        full = b64encode(encrypt_salted(pt or b"x", K, salt, mode))
        try:
            message.decode(wire.unseal(full[10:], K, mode))
        except SpaError:
            pass


def test_non_utf8_random_gate_is_a_decrypt_error():
    from spa_lite.core.cipher import encrypt_salted
    full = b64encode(encrypt_salted(b"\xff" * 16 + b":" + b"x" * 40, K, bytes(8), "cbc"))
    assert code_of(wire.unseal, full[10:], K, "cbc") == "decrypt"


def test_first_character_must_continue_the_salted_prefix():
    """The first wire character carries the last 4 bits of "Salted__", which decryption never
    checks: only the 4 characters an encoder can make are accepted."""
    assert GOOD_NOHMAC[0] in "89+/"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    low = alphabet.index(GOOD_NOHMAC[0]) & 3
    for high in range(16):
        c = alphabet[high << 2 | low]
        variant = c + GOOD_NOHMAC[1:]
        if c == GOOD_NOHMAC[0]:
            assert wire.parse(variant, K, "cbc") == GOOD_MSG
        else:
            assert code_of(wire.parse, variant, K, "cbc") == "prefix"
            assert code_of(wire.parse, c + GOOD[1:], K, "cbc", H) == "prefix"
