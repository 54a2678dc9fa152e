"""GnuPG stanzas on the server: checked at start, opened per packet, cheap checks first.

At start (``prepare``): the stanza's gpg program, GNUPGHOME and GPG_DECRYPT_ID are checked
once, so a missing gpg, an unreadable home or an unknown key id is one ``file:line`` line
and Rijndael-only configurations never look for gpg at all.

Per packet (``open_message``, called by policy.decide for a GnuPG-length payload), in this
order, every step cheaper than the next:
1. the stanza's HMAC (constant time), when it has a key: junk never reaches gpg;
2. base64, and the OpenPGP public-key packet must name this stanza's decryption key (the
   key id is in clear text at the start of the message): random junk stops here;
3. gpg itself, through ``opts.gpg`` (a ``SyncOpener`` here, or the daemon's bounded
   background ``GpgGate``; then the first pass answers PENDING and the packet is decided
   again when gpg is done);
4. the plaintext must be SPA data; its digest is a second replay key, so the same message
   in a re-framed OpenPGP envelope (other length encodings, same ciphertext) is a replay;
5. the signature, as fwknopd: required unless GPG_DISABLE_SIG; valid (good, and the key at
   least marginally valid) unless GPG_IGNORE_SIG_VERIFY_ERROR; the signer in
   GPG_FINGERPRINT_ID and GPG_REMOTE_ID when those are set.
"""

import hashlib
import os

from spa_lite import gpg
from spa_lite.core import message
from spa_lite.core.b64 import b64encode
from spa_lite.core.errors import SpaError
from spa_lite.server.config import ConfigError

PENDING = "pending"   # open_message's answer while gpg runs in the background
_ZERO_ID = "0" * 16   # a hidden recipient (gpg --throw-keyids)


# ------------------------------------------------------------------ at start
def prepare(stanzas, conf, warnings: list, run=gpg.key_fprs) -> None:
    """Fill in fwknopd.conf's GPG_HOME_DIR/GPG_EXE defaults and check each GnuPG stanza's
    program, home and key; raises ConfigError naming the stanza line."""
    for st in stanzas:
        if not st.gpg:
            continue
        where = st.seen.get("GPG_EXE") or conf.where.get("GPG_EXE", "default")
        if where == "default":
            where = st.seen.get("GPG_DECRYPT_ID") or st.where
        st.gpg_exe = st.gpg_exe or conf.get("GPG_EXE")
        st.gpg_home_dir = st.gpg_home_dir or conf.get("GPG_HOME_DIR")
        try:
            st.gpg_exe = gpg.find_exe(st.gpg_exe)
        except gpg.GpgError as exc:
            raise ConfigError("%s: stanza %d: %s" % (where, st.number, exc))
        hwhere = st.seen.get("GPG_HOME_DIR") or conf.where.get("GPG_HOME_DIR") or st.where
        if hwhere == "default":
            hwhere = st.where
        bad = gpg.home_problem(st.gpg_home_dir)
        if bad:
            raise ConfigError("%s: stanza %d: %s" % (hwhere, st.number, bad))
        loose = gpg.home_warning(st.gpg_home_dir)
        if loose:
            warnings.append("%s: stanza %d: %s" % (hwhere, st.number, loose))
        try:
            st.gpg_decrypt_fprs = run(st.gpg_exe, st.gpg_home_dir, st.gpg_decrypt_id, True)
        except gpg.GpgError as exc:
            raise ConfigError("%s: stanza %d: GPG_DECRYPT_ID: %s"
                              % (st.seen.get("GPG_DECRYPT_ID", st.where), st.number, exc))


def key_ids(st):
    """The 16-digit key ids a packet for this stanza may name (its key and subkeys)."""
    ids = getattr(st, "_gpg_ids", None)
    if ids is None:
        ids = {f[-16:] for f in st.gpg_decrypt_fprs}
        st._gpg_ids = ids
    return ids


# ------------------------------------------------------------------ per packet
class Opened:
    """open_message's result: ``msg`` or why not; ``refusal`` for a message that decrypted
    but whose signature this stanza refuses."""

    __slots__ = ("msg", "error", "pending", "replay", "refusal", "plaintext_key", "signer")

    def __init__(self, msg=None, error=None, pending=False, replay=False, refusal=None,
                 plaintext_key=None, signer=None) -> None:
        self.msg = msg
        self.error = error
        self.pending = pending
        self.replay = replay
        self.refusal = refusal
        self.plaintext_key = plaintext_key
        self.signer = signer


def plaintext_key(plaintext: bytes) -> str:
    """Replay key of a decrypted GnuPG message (a namespace apart from wire digests)."""
    return b64encode(hashlib.sha256(b"gpg-plaintext\0" + plaintext).digest())


def open_message(st, cand, payload: bytes, opener, replay, now: int) -> Opened:
    """Steps 1-5 of the module docstring for one stanza."""
    if st.hmac_key is not None and not gpg.hmac_ok(payload, st.hmac_type, st.hmac_key,
                                                   st.mac_function()):
        return Opened(error="HMAC verification failed")
    try:
        ct = gpg.ciphertext(payload, st.hmac_type if st.hmac_key is not None else None)
    except SpaError:
        return Opened(error="GnuPG data is not base64")
    ids = gpg.pkesk_key_ids(ct)
    if ids is None:
        return Opened(error="not an OpenPGP message (no public-key packet after 'hQ')")
    if _ZERO_ID not in ids and not key_ids(st) & set(ids):
        return Opened(error="encrypted to key %s, not stanza %d's GPG_DECRYPT_ID %s"
                      % (",".join(ids), st.number, st.gpg_decrypt_id))
    if opener is None:
        return Opened(error="GnuPG is not available in this mode")
    d = opener.decrypt(st, cand, ct)
    if d is PENDING:
        return Opened(pending=True)
    if isinstance(d, gpg.GpgError):
        return Opened(error="gpg: %s" % d)
    if d.decrypt_fprs and st.gpg_decrypt_fprs and not d.decrypt_fprs & st.gpg_decrypt_fprs:
        return Opened(error="decrypted with key %s, not stanza %d's GPG_DECRYPT_ID %s"
                      % (sorted(d.decrypt_fprs)[0], st.number, st.gpg_decrypt_id))
    try:
        msg = message.decode(d.plaintext.decode("ascii"))
    except (SpaError, UnicodeError) as exc:
        return Opened(error="GnuPG plaintext is not SPA data: %s" % exc)
    key = plaintext_key(d.plaintext)
    if replay.seen(key, now):
        return Opened(replay=True)
    return Opened(msg, refusal=signature_refusal(st, d), plaintext_key=key, signer=d.signer())


def signature_refusal(st, d):
    """Why this stanza refuses the signature facts ``d`` (None: accepted); fwknopd's order."""
    if not st.gpg_require_sig:
        return None
    if not d.signed:
        return "unsigned GnuPG packet (the stanza requires a signature: GPG_REQUIRE_SIG)"
    who = d.signer()
    if not st.gpg_ignore_sig_error:
        if d.sig != "good":
            return "bad GnuPG signature by %s (%s; GPG_IGNORE_SIG_VERIFY_ERROR is N)" % (who, d.sig)
        if d.validity not in gpg.TRUSTED:
            return ("GnuPG signature by %s is good but the key is not valid (trust %s): sign it "
                    "with the server key (gpg --sign-key) or set GPG_IGNORE_SIG_VERIFY_ERROR Y"
                    % (who, d.validity or "unknown"))
    fprs = [f for f in (d.fpr, d.primary_fpr) if f]
    if st.gpg_fingerprints and not any(f in st.gpg_fingerprints for f in fprs):
        return "GnuPG signer %s is not in GPG_FINGERPRINT_ID" % who
    if st.gpg_remote_ids:
        ids = fprs or [d.sig_keyid]
        if not any(gpg.id_matches(w, f) for w in st.gpg_remote_ids for f in ids):
            return "GnuPG signer %s is not in GPG_REMOTE_ID" % who
    return None


class SyncOpener:
    """Runs gpg inline (pcap files, tests): deterministic, one run per packet and stanza."""

    def __init__(self, timeout: float = gpg.RUN_TIMEOUT) -> None:
        self.timeout = timeout

    def decrypt(self, st, cand, ct: bytes):
        return run_decrypt(st, ct, self.timeout)


def run_decrypt(st, ct: bytes, timeout: float):
    """gpg.decrypt for a stanza; a GpgError is returned, not raised."""
    pw = st.gpg_decrypt_pw if st.gpg_decrypt_pw else None
    try:
        return gpg.decrypt(st.gpg_exe, st.gpg_home_dir, ct, pw, timeout)
    except gpg.GpgError as exc:
        return exc
    except OSError as exc:     # e.g. out of file descriptors: never kills the daemon
        return gpg.GpgError("exec", "cannot run gpg: %s" % (exc.strerror or exc))


def job_key(st):
    """Stanzas that decrypt the same way share one gpg run per packet (made once per
    stanza: realpath's lstat calls were half the cost of a junk packet)."""
    key = getattr(st, "_gpg_job", None)
    if key is None:
        key = st._gpg_job = (st.gpg_exe, os.path.realpath(st.gpg_home_dir), st.gpg_decrypt_pw)
    return key
