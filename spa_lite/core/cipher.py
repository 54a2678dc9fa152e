"""AES-256 as fwknop uses it: OpenSSL's EVP_BytesToKey(MD5, 1 round) with an 8-byte salt,
PKCS#7 padding in every mode, and ``Salted__ || salt || ciphertext`` framing.

Three interchangeable AES backends give byte-identical output: pycryptodome on CPython (fast,
declared dependency), ``cryptolib`` on MicroPython (ECB/CBC in C; the stream modes are built
on its ECB), and the pure-Python ``spa_lite.core.aes`` fallback for a router without
python3-cryptodome. ``set_backend`` lets tests pin each one.
"""

import sys

from spa_lite.core import limits
from spa_lite.core.digests import hash_bytes
from spa_lite.core.errors import SpaError

# fwknop's mode ids (never on the wire; both sides must be configured alike). PCBC (4) and
# the GnuPG placeholder (7) are not implemented by fwknop either.
MODES = {"ecb": 1, "cbc": 2, "cfb": 3, "ofb": 5, "ctr": 6, "legacy": 8}
DEFAULT_MODE = "cbc"
_MASK128 = (1 << 128) - 1


def mode_name(text: str) -> str:
    """Normalise a user-given mode name (``CBC``, ``legacy``...) or raise SpaError."""
    name = text.strip().lower()
    if name not in MODES:
        raise SpaError("param", "unknown encryption mode %r (use one of %s)"
                       % (text, ", ".join(sorted(MODES))))
    return name


def check_key(passphrase: bytes, mode: str) -> bytes:
    """Validate a Rijndael passphrase and apply legacy mode's pad/truncate rule."""
    if not passphrase:
        raise SpaError("key", "the encryption key is empty")
    if mode == "legacy":
        # Pre-2.5 fwknop (Perl, Crypt::CBC): pad with ASCII '0' to 16 bytes, cut at 16.
        passphrase = passphrase[:limits.LEGACY_KEY_LEN]
        return passphrase + b"0" * (limits.LEGACY_KEY_LEN - len(passphrase))
    if len(passphrase) > limits.MAX_RIJNDAEL_KEY_LEN:
        raise SpaError("key", "the encryption key is longer than %d bytes"
                       % limits.MAX_RIJNDAEL_KEY_LEN)
    return passphrase


def evp_bytes_to_key(passphrase: bytes, salt: bytes):
    """OpenSSL EVP_BytesToKey with MD5 and count=1: returns (32-byte key, 16-byte IV)."""
    out = b""
    block = b""
    while len(out) < limits.AES_KEY_LEN + limits.AES_BLOCK:
        block = hash_bytes("md5", block + passphrase + salt)
        out += block
    return out[:limits.AES_KEY_LEN], out[limits.AES_KEY_LEN:limits.AES_KEY_LEN + limits.AES_BLOCK]


def pkcs7_pad(data: bytes) -> bytes:
    """Always adds 1..16 bytes, as fwknop does in every mode (CFB, OFB and CTR included)."""
    n = limits.AES_BLOCK - len(data) % limits.AES_BLOCK
    return data + bytes([n]) * n


def pkcs7_unpad(data: bytes) -> bytes:
    """Strip padding only if well formed, else return data untouched (no padding oracle)."""
    if not data:
        return data
    n = data[-1]
    if n < 1 or n > limits.AES_BLOCK or n > len(data):
        return data
    for b in data[len(data) - n:]:
        if b != n:
            return data
    return data[:len(data) - n]


def _xor16(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(16, "big")


def _blocks(data: bytes):
    for i in range(0, len(data), 16):
        yield data[i:i + 16]


def _modes_from_block(mode: str, enc, dec, iv: bytes, data: bytes, encrypt: bool) -> bytes:
    """Block-cipher modes on top of single-block encrypt/decrypt functions."""
    out = []
    if mode == "ecb":
        f = enc if encrypt else dec
        for blk in _blocks(data):
            out.append(f(blk))
    elif mode in ("cbc", "legacy"):
        prev = iv
        for blk in _blocks(data):
            if encrypt:
                prev = enc(_xor16(blk, prev))
                out.append(prev)
            else:
                out.append(_xor16(dec(blk), prev))
                prev = blk
    elif mode == "cfb":
        prev = iv
        for blk in _blocks(data):
            o = _xor16(blk, enc(prev))
            out.append(o)
            prev = o if encrypt else blk
    elif mode == "ofb":
        state = iv
        for blk in _blocks(data):
            state = enc(state)
            out.append(_xor16(blk, state))
    elif mode == "ctr":
        ctr = int.from_bytes(iv, "big")
        for blk in _blocks(data):
            out.append(_xor16(blk, enc(ctr.to_bytes(16, "big"))))
            ctr = (ctr + 1) & _MASK128
    else:
        raise SpaError("param", "unknown encryption mode %r" % mode)
    return b"".join(out)


class _PurePython:
    name = "pure"

    def run(self, mode, key, iv, data, encrypt):
        from spa_lite.core.aes import AES
        aes = AES(key)
        return _modes_from_block(mode, aes.encrypt_block, aes.decrypt_block, iv, data, encrypt)


class _CryptoLib:
    """MicroPython's cryptolib: one object per operation, mode 1 = ECB, 2 = CBC."""
    name = "cryptolib"

    def __init__(self, mod):
        self.mod = mod

    def run(self, mode, key, iv, data, encrypt):
        aes = self.mod.aes
        if mode in ("cbc", "legacy"):
            obj = aes(key, 2, iv)
            return obj.encrypt(data) if encrypt else obj.decrypt(data)
        if mode == "ecb":
            obj = aes(key, 1)
            return obj.encrypt(data) if encrypt else obj.decrypt(data)
        enc_obj = aes(key, 1)  # stream modes only ever encrypt the keystream
        return _modes_from_block(mode, enc_obj.encrypt, None, iv, data, encrypt)


class _PyCryptodome:
    name = "pycryptodome"

    def __init__(self, aes_mod):
        self.AES = aes_mod

    def run(self, mode, key, iv, data, encrypt):
        A = self.AES
        if mode in ("cbc", "legacy"):
            c = A.new(key, A.MODE_CBC, iv=iv)
        elif mode == "ecb":
            c = A.new(key, A.MODE_ECB)
        elif mode == "cfb":
            c = A.new(key, A.MODE_CFB, iv=iv, segment_size=128)
        elif mode == "ofb":
            c = A.new(key, A.MODE_OFB, iv=iv)
        elif mode == "ctr":
            c = A.new(key, A.MODE_CTR, nonce=b"", initial_value=iv)
        else:
            raise SpaError("param", "unknown encryption mode %r" % mode)
        return c.encrypt(data) if encrypt else c.decrypt(data)


def _load(name: str):
    if name == "pycryptodome":
        if sys.implementation.name == "micropython":
            return None
        try:
            from Crypto.Cipher import AES  # pycryptodome
        except ImportError:
            try:
                from Cryptodome.Cipher import AES  # pycryptodomex / Debian python3-pycryptodome
            except ImportError:
                return None
        return _PyCryptodome(AES)
    if name == "cryptolib":
        for modname in ("cryptolib", "ucryptolib"):
            try:
                return _CryptoLib(__import__(modname))
            except ImportError:
                pass
        return None
    if name == "pure":
        return _PurePython()
    raise SpaError("param", "unknown AES backend %r" % name)


BACKEND_ORDER = ("pycryptodome", "cryptolib", "pure")
_backend = None


def set_backend(name=None):
    """Pin an AES backend by name (None: first available in BACKEND_ORDER). Returns its name."""
    global _backend
    for cand in ((name,) if name else BACKEND_ORDER):
        b = _load(cand)
        if b is not None:
            _backend = b
            return b.name
    raise SpaError("param", "AES backend %r is not available" % name)


def prefer_backend(name: str) -> str:
    """Use ``name`` unless a backend is already in use (a test or caller pinned one)."""
    if _backend is None:
        set_backend(name)
    return _backend.name


def backend_name() -> str:
    """Name of the AES backend in use (chosen on first use)."""
    if _backend is None:
        set_backend()
    return _backend.name


def available_backends() -> list:
    return [n for n in BACKEND_ORDER if _load(n) is not None]


def aes_run(mode: str, key: bytes, iv: bytes, data: bytes, encrypt: bool) -> bytes:
    """Encrypt or decrypt block-aligned ``data`` with AES-256 in ``mode``."""
    if _backend is None:
        set_backend()
    return _backend.run(mode, key, iv, data, encrypt)


def encrypt_salted(plaintext: bytes, passphrase: bytes, salt: bytes, mode: str = DEFAULT_MODE) -> bytes:
    """``Salted__ || salt || AES(PKCS7(plaintext))``: the bytes fwknop base64-encodes."""
    if len(salt) != limits.SALT_LEN:
        raise SpaError("param", "the salt must be %d bytes" % limits.SALT_LEN)
    key, iv = evp_bytes_to_key(check_key(passphrase, mode), salt)
    return limits.SALTED_MAGIC + salt + aes_run(mode, key, iv, pkcs7_pad(plaintext), True)


def decrypt_salted(data: bytes, passphrase: bytes, mode: str = DEFAULT_MODE) -> bytes:
    """Inverse of encrypt_salted, with libfko's checks (the magic itself is not checked)."""
    if len(data) < 2 * limits.AES_BLOCK or len(data) % limits.AES_BLOCK:
        raise SpaError("decrypt", "ciphertext length is not a positive multiple of 16")
    salt = data[8:16]
    key, iv = evp_bytes_to_key(check_key(passphrase, mode), salt)
    ct = data[16:]
    pt = pkcs7_unpad(aes_run(mode, key, iv, ct, False))
    if not pt or len(pt) < len(ct) - 32:
        raise SpaError("decrypt", "decryption failed")
    return pt
