"""Pure-Python AES and MD5 fallbacks against published vectors and reference implementations,
and the three AES backends giving identical SPA packets."""

import hashlib

import pytest
from hypothesis import given, settings, strategies as st

from spa_lite.core import cipher, message, wire
from spa_lite.core.aes import AES
from spa_lite.core.md5 import MD5, md5_digest

PT = bytes.fromhex("00112233445566778899aabbccddeeff")
FIPS197 = [  # Appendix C.1-C.3
    ("000102030405060708090a0b0c0d0e0f", "69c4e0d86a7b0430d8cdb78070b4c55a"),
    ("000102030405060708090a0b0c0d0e0f1011121314151617", "dda97ca4864cdfe06eaf70a0ec0d7191"),
    ("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
     "8ea2b7ca516745bfeafc49904b496089"),
]


@pytest.mark.parametrize("key,ct", FIPS197)
def test_fips197_vectors(key, ct):
    a = AES(bytes.fromhex(key))
    assert a.encrypt_block(PT).hex() == ct
    assert a.decrypt_block(bytes.fromhex(ct)) == PT


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
       st.binary(min_size=16, max_size=16))
def test_aes_matches_pycryptodome(key, block):
    ref = pytest.importorskip("Crypto.Cipher.AES")
    a = AES(key)
    assert a.encrypt_block(block) == ref.new(key, ref.MODE_ECB).encrypt(block)
    assert a.decrypt_block(block) == ref.new(key, ref.MODE_ECB).decrypt(block)
    assert a.decrypt_block(a.encrypt_block(block)) == block


def test_aes_rejects_bad_sizes():
    with pytest.raises(ValueError):
        AES(b"x" * 17)
    with pytest.raises(ValueError):
        AES(b"x" * 16).encrypt_block(b"short")
    with pytest.raises(ValueError):
        AES(b"x" * 16).decrypt_block(b"x" * 17)


RFC1321 = [
    (b"", "d41d8cd98f00b204e9800998ecf8427e"),
    (b"a", "0cc175b9c0f1b6a831c399e269772661"),
    (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
    (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
    (b"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
     "d174ab98d277d9f5a5611c2c9f419d9f"),
    (b"1234567890" * 8, "57edf4a22be3c955ac49da2e2107b67a"),
]


@pytest.mark.parametrize("data,hexd", RFC1321)
def test_rfc1321_suite(data, hexd):
    assert md5_digest(data).hex() == hexd
    h = MD5(data[:3])
    h.update(data[3:])
    assert h.digest().hex() == hexd


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_md5_matches_hashlib(data):
    assert md5_digest(data) == hashlib.md5(data).digest()


@pytest.mark.parametrize("mode", ["cbc", "ecb", "cfb", "ofb", "ctr", "legacy"])
def test_backends_give_identical_packets(mode):
    avail = cipher.available_backends()
    assert "pure" in avail
    m = message.SpaMessage("1234567890123456", "spauser", 1700000000, 1, "127.0.0.2,tcp/22")
    hk = None if mode == "legacy" else b"hmac-key"
    outs = {}
    try:
        for b in avail:
            cipher.set_backend(b)
            outs[b] = wire.build(m, b"secret", bytes(range(8)), mode, hk)
            assert wire.parse(outs[b], b"secret", mode, hk) == m
    finally:
        cipher.set_backend(None)
    assert len(set(outs.values())) == 1, outs
