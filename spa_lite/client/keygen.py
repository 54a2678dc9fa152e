"""``spa-lite keygen``: fresh keys in fwknop's ``--key-gen`` format, and the QR payload the
Fwknop2 Android app scans (``KEY_BASE64:<b64> HMAC_KEY_BASE64:<b64>``).
"""

import os
import shutil
import subprocess

from spa_lite.core import limits
from spa_lite.core.b64 import b64encode_padded

# HMAC key bytes by type, as fwknop sizes them (SHA-3 has no fwknop default; we pick 64).
HMAC_KEY_LEN = {"md5": 16, "sha1": 20, "sha256": 64, "sha384": 128, "sha512": 128,
                "sha3_256": 64, "sha3_512": 64}


def generate(random_bytes=os.urandom, key_len: int = limits.MAX_RIJNDAEL_KEY_LEN,
             hmac_len: int = 64):
    """(KEY_BASE64, HMAC_KEY_BASE64) strings, padded base64 as fwknop prints them."""
    return b64encode_padded(random_bytes(key_len)), b64encode_padded(random_bytes(hmac_len))


def keygen_lines(key_b64: str, hmac_b64: str) -> str:
    return "KEY_BASE64: %s\nHMAC_KEY_BASE64: %s\n" % (key_b64, hmac_b64)


def qr_payload(key_b64: str, hmac_b64: str) -> str:
    return "KEY_BASE64:%s HMAC_KEY_BASE64:%s" % (key_b64, hmac_b64)


def as_json(key_b64: str, hmac_b64: str, hmac_type: str, key_file=None, uci_section=None) -> dict:
    """``keygen --json``: what a web page needs to store the keys and draw the phone's QR
    code. With ``-K`` the keys went to that file and are left out here."""
    out = {"hmac_digest_type": hmac_type, "key_file": key_file, "uci_section": uci_section}
    if key_file:
        out.update(key_base64=None, hmac_key_base64=None, qr_payload=None)
    else:
        out.update(key_base64=key_b64, hmac_key_base64=hmac_b64,
                   qr_payload=qr_payload(key_b64, hmac_b64))
    return out


def render_qr(payload: str):
    """Terminal QR code via ``qrencode`` when installed; None when it is not available."""
    exe = shutil.which("qrencode")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "-t", "UTF8", "-m", "2", "-o", "-"], input=payload.encode(),
                             capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.decode("utf-8", "replace")
