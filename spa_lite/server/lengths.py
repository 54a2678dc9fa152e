"""Which payload lengths can carry SPA data for a stanza: the input of the kernel filter.

Random junk (a port scan, a UDP flood) should never wake Python, so the BPF program drops
payloads that no configured stanza could accept (bpf.compile_filter). It must never drop a
valid packet, so every rule here errs on the wide side and is property-tested against
packets of every mode, digest and HMAC type made by spa-lite and by the real fwknop client.

A rule is ``(lo, hi, offset, first)``: payload lengths ``lo <= L <= hi``; with ``offset``
None any such length, else only lengths where ``3 * (L + offset) % 64 <= 2``, which is
exactly the set of lengths of '='-stripped base64 over a multiple of 16 bytes, minus what is
stripped or appended (see rijndael_rule); with ``first`` (bytes) the payload's first byte
must be one of those.

A GnuPG stanza accepts the GnuPG lengths (400 or more, any first character: it depends on
the server key's size); another kind would answer with a plain range.
"""

from spa_lite.core import limits
from spa_lite.core.digests import b64_len

ANY = (limits.MIN_SPA_DATA_SIZE, limits.MAX_SPA_PACKET_LEN, None, None)
# base64 of b"Salted__" + salt with its first 10 characters cut: the 11th character holds the
# low 4 bits of '_' (1111) and the top 2 bits of the salt, so it is base64 digit 60..63
RIJNDAEL_FIRST = b"89+/"


def rijndael_rule(hmac_type, cmd_exec: bool = False) -> tuple:
    """The rule for Rijndael data with an HMAC of ``hmac_type`` appended (None: no HMAC).

    On the wire: base64('Salted__' + salt + ciphertext) without '=' and without its first 10
    characters (``U2FsdGVkX1``), then the HMAC's base64 (fixed length ``h``). The ciphertext
    is PKCS#7-padded in every mode, so the base64'd bytes are 16*m for some m, whose
    unpadded base64 length is ceil(64*m/3): L + 10 - h is such a length exactly when
    3*(L + 10 - h) mod 64 is 0, 1 or 2 (m = 0, 2, 1 mod 3). Bounds are spa-lite's own
    (policy.precheck, wire.unseal, the GnuPG-length rule in policy.decide). The first
    character is one of RIJNDAEL_FIRST (policy.precheck refuses data that kept the prefix)."""
    h = b64_len(hmac_type) if hmac_type else 0
    prefix = len(limits.B64_RIJNDAEL_SALT)
    # wire.unseal refuses ciphertext text (prefix included) of MIN_GNUPG_MSG_SIZE or more
    hi = limits.MIN_GNUPG_MSG_SIZE - 1 - prefix + h
    if not cmd_exec:                       # policy.decide skips such lengths for the stanza
        hi = min(hi, limits.MIN_GNUPG_MSG_SIZE - 1)
    return (limits.MIN_SPA_DATA_SIZE, min(hi, limits.MAX_SPA_PACKET_LEN), prefix - h,
            RIJNDAEL_FIRST)


def stanza_rules(st) -> list:
    """The rules one access stanza can accept (a list, so a stanza kind may give several)."""
    if getattr(st, "gpg", False):
        # GnuPG data is MIN_GNUPG_MSG_SIZE or longer (policy.decide sends only those to gpg);
        # a stanza may also hold a Rijndael key for the shorter ones
        rules = [(limits.MIN_GNUPG_MSG_SIZE, limits.MAX_SPA_PACKET_LEN, None, None)]
        if getattr(st, "key", None) is not None:
            rules.append(rijndael_rule(st.hmac_type if st.hmac_key is not None else None,
                                       st.enable_cmd_exec))
        return rules
    if getattr(st, "key", None) is None:
        return [ANY]                       # unknown kind: no constraint known
    return [rijndael_rule(st.hmac_type if st.hmac_key is not None else None,
                          st.enable_cmd_exec)]


def payload_rules(stanzas) -> list:
    """The union over all stanzas, merged per (offset, first) (a wider range only ever
    accepts more). An empty list means no stanza: nothing can be SPA data."""
    merged = {}
    for st in stanzas:
        for lo, hi, off, first in stanza_rules(st):
            key = (off, first)
            if key in merged:
                plo, phi = merged[key][:2]
                lo, hi = min(lo, plo), max(hi, phi)
            merged[key] = (lo, hi, off, first)
    if (None, None) in merged:             # an unconstrained range covers the others inside it
        alo, ahi = merged[(None, None)][:2]
        merged = {k: v for k, v in merged.items()
                  if k == (None, None) or not (alo <= v[0] and v[1] <= ahi)}
    return sorted(merged.values(), key=lambda r: (r[2] is not None, r[2] or 0, r[0],
                                                  r[3] or b""))


def accepts(rules, length: int, first=None) -> bool:
    """What the kernel program decides about a payload of ``length`` whose first byte is
    ``first`` (an int; None: not looked at), with the same arithmetic."""
    for lo, hi, off, chars in rules:
        if lo <= length <= hi and (off is None or (3 * (length + off)) % 64 <= 2) and (
                chars is None or first is None or first in chars):
            return True
    return False
