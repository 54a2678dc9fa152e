"""Human-readable dump of an SPA packet's fields, laid out as ``fwknop -v`` prints them."""

from spa_lite.core.cipher import MODES
from spa_lite.core.digests import DIGEST_TYPES, b64_len
from spa_lite.core.fields import MESSAGE_TYPE_NAMES

MODE_LABELS = {"ecb": "ECB", "cbc": "CBC", "cfb": "CFB", "ofb": "OFB", "ctr": "CTR",
               "legacy": "Legacy"}


def _digest_label(name) -> str:
    if not name:
        return "0 (None)"
    return "%d (%s)" % (DIGEST_TYPES[name][0], name.upper())


def format_fields(msg, mode: str, hmac_type, plaintext: str, wire: str) -> str:
    """The 'SPA Field Values' block; ``hmac_type`` None means no HMAC."""
    def opt(v):
        return "<NULL>" if v is None else v
    cut = plaintext.rfind(":")
    rows = [
        ("Random Value", msg.rand_value), ("Username", msg.username),
        ("Timestamp", msg.timestamp), ("FKO Version", msg.version),
        ("Message Type", "%d (%s)" % (msg.message_type, MESSAGE_TYPE_NAMES[msg.message_type])),
        ("Message String", msg.message), ("Nat Access", opt(msg.nat_access)),
        ("Server Auth", opt(msg.server_auth)), ("Client Timeout", msg.client_timeout or 0),
        ("Digest Type", _digest_label(msg.digest_type)), ("HMAC Type", _digest_label(hmac_type)),
        ("Encryption Type", "2 (GPG)" if mode == "gpg" else "1 (Rijndael)"),
        ("Encryption Mode", "7 (Asymmetric)" if mode == "gpg" else
         "%d (%s)" % (MODES[mode], MODE_LABELS[mode])),
        ("Encoded Data", plaintext[:cut]), ("SPA Data Digest", plaintext[cut + 1:]),
        ("HMAC", wire[len(wire) - b64_len(hmac_type):] if hmac_type else "<NULL>"),
        ("Final SPA Data", wire),
    ]
    lines = ["SPA Field Values:", "================="]
    lines += ["%15s: %s" % (k, v) for k, v in rows]
    return "\n".join(lines) + "\n"
