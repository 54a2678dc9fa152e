"""Pure-Python AES (FIPS-197) block cipher: the fallback when neither pycryptodome (CPython)
nor ``cryptolib`` (MicroPython) is present, e.g. on a router without python3-cryptodome.

Tables are generated at import (no large literals) and each round is four table lookups per
column on 32-bit words, so an SPA packet (about 13 blocks) costs a few milliseconds.
MicroPython subset: no imports, positional int.to_bytes/from_bytes only.
"""


def _xtime(a: int) -> int:
    a <<= 1
    return (a ^ 0x11B) if a & 0x100 else a


def _build_tables():
    sbox = [0] * 256
    inv = [0] * 256
    p = q = 1
    # Walk the multiplicative group with generator 3 to get inverses, then the affine map.
    while True:
        p = p ^ _xtime(p)                       # p *= 3
        q ^= q << 1                             # q /= 3
        q ^= q << 2
        q ^= q << 4
        q &= 0xFF
        if q & 0x80:
            q ^= 0x09
        x = q ^ ((q << 1) | (q >> 7)) ^ ((q << 2) | (q >> 6)) ^ ((q << 3) | (q >> 5)) \
            ^ ((q << 4) | (q >> 4))
        x = (x ^ 0x63) & 0xFF
        sbox[p] = x
        inv[x] = p
        if p == 1:
            break
    sbox[0] = 0x63
    inv[0x63] = 0
    te = [[0] * 256 for _ in range(4)]
    td = [[0] * 256 for _ in range(4)]
    for i in range(256):
        s = sbox[i]
        s2 = _xtime(s)
        s3 = s2 ^ s
        w = (s2 << 24) | (s << 16) | (s << 8) | s3
        si = inv[i]
        x2 = _xtime(si)
        x4 = _xtime(x2)
        x8 = _xtime(x4)
        s9 = x8 ^ si                            # 9, 11, 13, 14 times si in GF(2^8)
        sb = x8 ^ x2 ^ si
        sd = x8 ^ x4 ^ si
        se = x8 ^ x4 ^ x2
        v = (se << 24) | (s9 << 16) | (sd << 8) | sb
        for r in range(4):
            te[r][i] = ((w >> (8 * r)) | (w << (32 - 8 * r))) & 0xFFFFFFFF
            td[r][i] = ((v >> (8 * r)) | (v << (32 - 8 * r))) & 0xFFFFFFFF
    return sbox, inv, te, td


SBOX, INV_SBOX, _TE, _TD = _build_tables()
_TE0, _TE1, _TE2, _TE3 = _TE
_TD0, _TD1, _TD2, _TD3 = _TD
_RCON = (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36)


def _words(b: bytes):
    return [int.from_bytes(b[i:i + 4], "big") for i in range(0, len(b), 4)]


class AES:
    """AES with a 16, 24 or 32-byte key; ``encrypt_block``/``decrypt_block`` on 16 bytes."""

    def __init__(self, key: bytes) -> None:
        if len(key) not in (16, 24, 32):
            raise ValueError("AES key must be 16, 24 or 32 bytes")
        nk = len(key) // 4
        self.rounds = nk + 6
        w = _words(key)
        s = SBOX
        for i in range(nk, 4 * (self.rounds + 1)):
            t = w[i - 1]
            if i % nk == 0:
                t = ((s[(t >> 16) & 255] << 24) | (s[(t >> 8) & 255] << 16) |
                     (s[t & 255] << 8) | s[t >> 24]) ^ (_RCON[i // nk - 1] << 24)
            elif nk > 6 and i % nk == 4:
                t = (s[t >> 24] << 24) | (s[(t >> 16) & 255] << 16) | \
                    (s[(t >> 8) & 255] << 8) | s[t & 255]
            w.append(w[i - nk] ^ t)
        self._ek = w
        # Decryption keys: reversed round order, InvMixColumns on the inner rounds.
        dk = []
        r = self.rounds
        for rnd in range(r + 1):
            blk = w[4 * (r - rnd):4 * (r - rnd) + 4]
            if 0 < rnd < r:
                blk = [_TD0[s[x >> 24]] ^ _TD1[s[(x >> 16) & 255]] ^
                       _TD2[s[(x >> 8) & 255]] ^ _TD3[s[x & 255]] for x in blk]
            dk.extend(blk)
        self._dk = dk

    def encrypt_block(self, block: bytes) -> bytes:
        if len(block) != 16:
            raise ValueError("AES block must be 16 bytes")
        k = self._ek
        s0, s1, s2, s3 = _words(block)
        s0 ^= k[0]
        s1 ^= k[1]
        s2 ^= k[2]
        s3 ^= k[3]
        t0, t1, t2, t3 = _TE0, _TE1, _TE2, _TE3
        i = 4
        for _ in range(self.rounds - 1):
            a = t0[s0 >> 24] ^ t1[(s1 >> 16) & 255] ^ t2[(s2 >> 8) & 255] ^ t3[s3 & 255] ^ k[i]
            b = t0[s1 >> 24] ^ t1[(s2 >> 16) & 255] ^ t2[(s3 >> 8) & 255] ^ t3[s0 & 255] ^ k[i + 1]
            c = t0[s2 >> 24] ^ t1[(s3 >> 16) & 255] ^ t2[(s0 >> 8) & 255] ^ t3[s1 & 255] ^ k[i + 2]
            d = t0[s3 >> 24] ^ t1[(s0 >> 16) & 255] ^ t2[(s1 >> 8) & 255] ^ t3[s2 & 255] ^ k[i + 3]
            s0, s1, s2, s3 = a, b, c, d
            i += 4
        s = SBOX
        out = ((s[s0 >> 24] << 24 | s[(s1 >> 16) & 255] << 16 | s[(s2 >> 8) & 255] << 8 | s[s3 & 255]) ^ k[i],
               (s[s1 >> 24] << 24 | s[(s2 >> 16) & 255] << 16 | s[(s3 >> 8) & 255] << 8 | s[s0 & 255]) ^ k[i + 1],
               (s[s2 >> 24] << 24 | s[(s3 >> 16) & 255] << 16 | s[(s0 >> 8) & 255] << 8 | s[s1 & 255]) ^ k[i + 2],
               (s[s3 >> 24] << 24 | s[(s0 >> 16) & 255] << 16 | s[(s1 >> 8) & 255] << 8 | s[s2 & 255]) ^ k[i + 3])
        return b"".join(x.to_bytes(4, "big") for x in out)

    def decrypt_block(self, block: bytes) -> bytes:
        if len(block) != 16:
            raise ValueError("AES block must be 16 bytes")
        k = self._dk
        s0, s1, s2, s3 = _words(block)
        s0 ^= k[0]
        s1 ^= k[1]
        s2 ^= k[2]
        s3 ^= k[3]
        t0, t1, t2, t3 = _TD0, _TD1, _TD2, _TD3
        i = 4
        for _ in range(self.rounds - 1):
            a = t0[s0 >> 24] ^ t1[(s3 >> 16) & 255] ^ t2[(s2 >> 8) & 255] ^ t3[s1 & 255] ^ k[i]
            b = t0[s1 >> 24] ^ t1[(s0 >> 16) & 255] ^ t2[(s3 >> 8) & 255] ^ t3[s2 & 255] ^ k[i + 1]
            c = t0[s2 >> 24] ^ t1[(s1 >> 16) & 255] ^ t2[(s0 >> 8) & 255] ^ t3[s3 & 255] ^ k[i + 2]
            d = t0[s3 >> 24] ^ t1[(s2 >> 16) & 255] ^ t2[(s1 >> 8) & 255] ^ t3[s0 & 255] ^ k[i + 3]
            s0, s1, s2, s3 = a, b, c, d
            i += 4
        s = INV_SBOX
        out = ((s[s0 >> 24] << 24 | s[(s3 >> 16) & 255] << 16 | s[(s2 >> 8) & 255] << 8 | s[s1 & 255]) ^ k[i],
               (s[s1 >> 24] << 24 | s[(s0 >> 16) & 255] << 16 | s[(s3 >> 8) & 255] << 8 | s[s2 & 255]) ^ k[i + 1],
               (s[s2 >> 24] << 24 | s[(s1 >> 16) & 255] << 16 | s[(s0 >> 8) & 255] << 8 | s[s3 & 255]) ^ k[i + 2],
               (s[s3 >> 24] << 24 | s[(s2 >> 16) & 255] << 16 | s[(s1 >> 8) & 255] << 8 | s[s0 & 255]) ^ k[i + 3])
        return b"".join(x.to_bytes(4, "big") for x in out)
