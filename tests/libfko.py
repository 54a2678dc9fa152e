"""A small ctypes binding to the real libfko.so.3 (Debian fwknop-client 2.6.10), used as an
independent decoder: if fwknop's own library decodes a spa-lite packet, fwknopd will too."""

import ctypes
import ctypes.util

MODES = {"ecb": 1, "cbc": 2, "cfb": 3, "ofb": 5, "ctr": 6, "legacy": 8}
DIGESTS = {"md5": 1, "sha1": 2, "sha256": 3, "sha384": 4, "sha512": 5, "sha3_256": 6, "sha3_512": 7}
NAMES = {v: k for k, v in DIGESTS.items()}


def load():
    """The library, or None when it is not installed."""
    for name in ("libfko.so.3", ctypes.util.find_library("fko")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.fko_errstr.restype = ctypes.c_char_p
        lib.fko_new_with_data.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p,
                                          ctypes.c_char_p, ctypes.c_int, ctypes.c_int,
                                          ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
        lib.fko_destroy.argtypes = [ctypes.c_void_p]
        return lib
    return None


class FkoError(Exception):
    pass


def decode(lib, wire: str, key: bytes, mode: str = "cbc", hmac_key=None, hmac_type="sha256"):
    """Decode with libfko; returns a dict of fields or raises FkoError(libfko's message)."""
    ctx = ctypes.c_void_p()
    hk = hmac_key if hmac_key is not None else None
    rc = lib.fko_new_with_data(ctypes.byref(ctx), wire.encode(), key, len(key), MODES[mode],
                               hk, len(hk) if hk else 0, DIGESTS[hmac_type] if hk else 0)
    try:
        if rc != 0:
            raise FkoError("%d %s" % (rc, lib.fko_errstr(rc).decode()))
        out = {}
        for name, fn in (("rand", "fko_get_rand_value"), ("user", "fko_get_username"),
                         ("version", "fko_get_version"), ("message", "fko_get_spa_message"),
                         ("nat_access", "fko_get_spa_nat_access"),
                         ("server_auth", "fko_get_spa_server_auth")):
            p = ctypes.c_char_p()
            getattr(lib, fn)(ctx, ctypes.byref(p))
            out[name] = p.value.decode() if p.value is not None else None
        ts = ctypes.c_long()
        lib.fko_get_timestamp(ctx, ctypes.byref(ts))
        out["timestamp"] = ts.value
        for name, fn in (("type", "fko_get_spa_message_type"),
                         ("digest", "fko_get_spa_digest_type")):
            v = ctypes.c_short()
            getattr(lib, fn)(ctx, ctypes.byref(v))
            out[name] = v.value
        t = ctypes.c_int()
        lib.fko_get_spa_client_timeout(ctx, ctypes.byref(t))
        out["client_timeout"] = t.value
        out["digest"] = NAMES.get(out["digest"], out["digest"])
        return out
    finally:
        if ctx.value:
            lib.fko_destroy(ctx)
