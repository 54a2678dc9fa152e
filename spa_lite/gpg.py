"""GnuPG SPA, both sides: the real ``gpg`` (GnuPG 2) run by argument list, and fwknop's
framing of its output.

Why a subprocess and not a library: python-gnupg and the gpgme bindings are not in
OpenWrt's python3-light (they would be new runtime dependencies) and both run the same
``gpg`` binary underneath anyway; gpgme adds libgpgme+libassuan to the router's flash.

How ``gpg`` is run:
- ``--batch --no-tty``, the stanza's (or client's) ``--homedir``; nothing in the
  environment is relied on, so GNUPGHOME is whatever the configuration says;
- a passphrase travels through a pipe (``--pinentry-mode loopback --passphrase-fd N``),
  never argv or the environment;
- verdicts are read from ``--status-fd`` machine lines (``[GNUPG:] VALIDSIG ...``) on their
  own pipe, never from gpg's human messages;
- every run has a time limit, and the output is capped (``--max-output``), so neither a
  stuck agent nor a compression bomb can hold the daemon.

Framing (fwknop's ``lib/fko_encryption.c``): the plaintext is the same ``encoded:digest``
text as Rijndael's; GPG's binary output is base64 without '=', and fwknop drops its first
two characters (always ``hQ`` for an RSA key: an old-format public-key packet with a two
byte length) and the server puts ``hQ`` back. The HMAC, when used, covers the base64 text
*with* ``hQ``. An ECC (cv25519) encryption key makes a shorter first packet (``hF..``), which
fwknop would cut and the server restore wrongly: :func:`seal` refuses it with the reason.
"""

import os
import subprocess

from spa_lite.core import limits
from spa_lite.core.b64 import b64decode, b64encode, b64encode_bytes
from spa_lite.core.digests import b64_len, equal, hmac_b64, hmac_bytes

PREFIX = "hQ"
_PREFIX_B = PREFIX.encode()
DEFAULT_EXE = "/usr/bin/gpg"          # fwknop's default GPG_EXE
DEFAULT_SERVER_HOME = "/root/.gnupg"  # fwknopd's default GPG_HOME_DIR
RUN_TIMEOUT = 5.0                     # seconds for one gpg run (decrypt, encrypt, key lookup)
MAX_PLAINTEXT = 2048                  # --max-output: a SPA plaintext is < 1500 bytes
TRUSTED = ("marginal", "fully", "ultimate")   # gpgme validity >= MARGINAL, as libfko asks
ERR_BAD_PASSPHRASE, ERR_CANCELED, ERR_NO_PASSPHRASE = 11, 99, 177   # libgpg-error codes


class GpgError(Exception):
    """One line a person can act on; ``code`` lets callers tell causes apart."""

    def __init__(self, code: str, text: str) -> None:
        Exception.__init__(self, text)
        self.code = code


# ------------------------------------------------------------------ running gpg
def find_exe(exe: str) -> str:
    """The gpg program's path, or GpgError('missing') naming it."""
    if os.sep not in exe:
        import shutil
        found = shutil.which(exe)
        if found:
            return found
    elif os.path.isfile(exe) and os.access(exe, os.X_OK):
        return exe
    raise GpgError("missing", "GnuPG program %s is not installed (install gnupg: apt-get "
                   "install gnupg, or on OpenWrt opkg install gnupg2 gnupg2-utils)" % exe)


def home_problem(home: str):
    """Why ``home`` cannot serve as a GNUPGHOME (None if it can)."""
    if not os.path.exists(home):
        return "GnuPG home %s does not exist" % home
    if not os.path.isdir(home):
        return "GnuPG home %s is not a directory" % home
    if not os.access(home, os.R_OK | os.X_OK):
        return "GnuPG home %s is not readable by this user (uid %d)" % (home, os.getuid())
    return None


def home_warning(home: str):
    """gpg's 'unsafe permissions' warning, as one line (None if the mode is private)."""
    try:
        mode = os.stat(home).st_mode & 0o777
    except OSError:
        return None
    if mode & 0o077:
        return ("GnuPG home %s has permissions %o (gpg warns: unsafe permissions); run "
                "chmod 700 %s" % (home, mode, home))
    return None


class Status:
    """The ``[GNUPG:]`` lines of one run: ``has(KEYWORD)`` and ``args(KEYWORD)``."""

    def __init__(self, text: str) -> None:
        self.lines = []
        for line in text.splitlines():
            if line.startswith("[GNUPG:] "):
                parts = line[9:].split(" ")
                self.lines.append((parts[0], parts[1:]))

    def has(self, kw: str) -> bool:
        return any(k == kw for k, _ in self.lines)

    def error_codes(self):
        """gpg-error codes (low 16 bits) of ERROR and FAILURE lines."""
        out = set()
        for k, a in self.lines:
            if k in ("ERROR", "FAILURE") and a and a[-1].isdigit():
                out.add(int(a[-1]) & 0xFFFF)
        return out

    def bad_passphrase(self) -> bool:
        return self.has("BAD_PASSPHRASE") or ERR_BAD_PASSPHRASE in self.error_codes()

    def wants_passphrase(self) -> bool:
        return (self.has("MISSING_PASSPHRASE") or self.has("INQUIRE_MAXLEN")
                or bool(self.error_codes() & {ERR_CANCELED, ERR_NO_PASSPHRASE}))

    def args(self, kw: str):
        for k, a in self.lines:
            if k == kw:
                return a
        return None


def run(exe: str, home: str, args, data: bytes, passphrase=None, timeout: float = RUN_TIMEOUT,
        loopback: bool = True):
    """Run gpg once: (returncode, stdout bytes, Status, stderr text).

    ``passphrase`` (bytes) goes through its own pipe; ``None`` gives gpg none. Raises
    GpgError for a missing program and for the time limit."""
    status_r, status_w = os.pipe()
    fds = [status_w]
    argv = [exe, "--batch", "--no-tty", "--homedir", home, "--status-fd", str(status_w),
            "--no-auto-key-retrieve", "--no-greeting"]
    pw_r = None
    if loopback:
        argv += ["--pinentry-mode", "loopback"]
    if passphrase is not None:
        pw_r, pw_w = os.pipe()
        try:
            os.write(pw_w, passphrase + b"\n")   # < 64 KiB: fits in the pipe at once
        finally:
            os.close(pw_w)
        fds.append(pw_r)
        argv += ["--passphrase-fd", str(pw_r)]
    argv += list(args)
    try:
        try:
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, pass_fds=fds, close_fds=True,
                                 env=_env(), start_new_session=True)
        except OSError as exc:
            raise GpgError("missing", "cannot run GnuPG program %s: %s"
                           % (exe, exc.strerror or exc))
        os.close(status_w)
        status_w = None
        if pw_r is not None:
            os.close(pw_r)
            pw_r = None
        try:
            out, err = p.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, 9)        # gpg and anything it started (not the agent:
            except OSError:                # that daemonizes into its own session)
                p.kill()
            p.communicate()
            raise GpgError("timeout", "gpg (%s, home %s) did not finish within %g s"
                           % (exe, home, timeout))
        status = _drain(status_r)
    finally:
        for fd in (status_r, status_w, pw_r):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
    return p.returncode, out, Status(status), err.decode("utf-8", "replace")


def _env() -> dict:
    """gpg's environment: no GNUPGHOME/GPG_AGENT_INFO leaking in (--homedir decides), C
    locale so nothing depends on translations, and a PATH for gpg-agent's autostart."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    for k in ("HOME", "TMPDIR"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def _drain(fd: int) -> str:
    chunks = []
    os.set_blocking(fd, False)
    while True:
        try:
            b = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks).decode("utf-8", "replace")


def _last_gpg_line(err: str) -> str:
    lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


# ------------------------------------------------------------------ server side
class Decrypted:
    """What gpg said about one message: plaintext and the first signature's facts."""

    def __init__(self) -> None:
        self.plaintext = b""
        self.decrypt_fprs = set()   # DECRYPTION_KEY: subkey and primary fingerprints
        self.signed = False
        self.sig = None             # good | bad | expired-sig | expired-key | revoked | no-pubkey | error
        self.sig_keyid = None       # 16 hex digits, from GOODSIG/BADSIG/ERRSIG
        self.fpr = None             # VALIDSIG: the signing (sub)key's fingerprint
        self.primary_fpr = None     # VALIDSIG: its primary key's fingerprint
        self.validity = None        # undefined | never | marginal | fully | ultimate

    def signer(self) -> str:
        return self.fpr or self.sig_keyid or "unknown key"


_SIG_KEYWORDS = {"GOODSIG": "good", "BADSIG": "bad", "EXPSIG": "expired-sig",
                 "EXPKEYSIG": "expired-key", "REVKEYSIG": "revoked", "ERRSIG": "error"}


def decrypt(exe: str, home: str, data: bytes, passphrase=None,
            timeout: float = RUN_TIMEOUT) -> Decrypted:
    """Decrypt (and verify, if signed) an OpenPGP message; GpgError says why not."""
    rc, out, st, err = run(exe, home, ["--max-output", str(MAX_PLAINTEXT), "--decrypt"], data,
                           passphrase, timeout)
    if st.bad_passphrase():
        raise GpgError("passphrase", "wrong passphrase for the decryption key (GPG_DECRYPT_PW)")
    if st.wants_passphrase() and not st.has("DECRYPTION_OKAY"):
        raise GpgError("passphrase", "the decryption key needs a passphrase: set GPG_DECRYPT_PW")
    if st.has("NO_SECKEY") and not st.has("DECRYPTION_OKAY"):
        ids = [a[0] for k, a in st.lines if k == "NO_SECKEY" and a]
        raise GpgError("nokey", "encrypted to key %s, which is not in %s"
                       % (",".join(ids) or "?", home))
    if not st.has("DECRYPTION_OKAY") or rc not in (0, 1, 2):
        if st.has("NODATA") or st.has("NO_DATA"):
            raise GpgError("decrypt", "not an OpenPGP message")
        raise GpgError("decrypt", "gpg could not decrypt it (%s)" % _last_gpg_line(err))
    d = Decrypted()
    d.plaintext = out
    for k, a in st.lines:
        if k == "DECRYPTION_KEY" and len(a) >= 2:
            d.decrypt_fprs.update(x.upper() for x in a[:2])
        elif k in _SIG_KEYWORDS and d.sig is None:
            d.signed = True
            d.sig = _SIG_KEYWORDS[k]
            if k == "ERRSIG" and len(a) > 5 and a[5] == "9":
                d.sig = "no-pubkey"
            d.sig_keyid = (a[0] if a else "").upper()
        elif k == "VALIDSIG" and d.fpr is None and a:
            d.fpr = a[0].upper()
            d.primary_fpr = (a[9] if len(a) > 9 else a[0]).upper()
        elif k.startswith("TRUST_") and d.validity is None:
            d.validity = k[6:].lower()
    if len(d.plaintext) >= MAX_PLAINTEXT:
        raise GpgError("decrypt", "decrypted data longer than %d bytes" % MAX_PLAINTEXT)
    return d


def key_fprs(exe: str, home: str, key_id: str, secret: bool, timeout: float = RUN_TIMEOUT):
    """Fingerprints (primary and subkeys) of the keys matching ``key_id``; GpgError('nokey')
    when there is none. Used at start, so an unknown id is one clear line then."""
    rc, out, st, err = run(exe, home, ["--with-colons", "--fixed-list-mode",
                                       "--list-secret-keys" if secret else "--list-keys",
                                       "--", key_id], b"", None, timeout, loopback=False)
    fprs = set()
    for line in out.decode("utf-8", "replace").splitlines():
        f = line.split(":")
        if f[0] == "fpr" and len(f) > 9:
            fprs.add(f[9].upper())
    if not fprs:
        raise GpgError("nokey", "no %s key %s in %s%s"
                       % ("secret" if secret else "public", key_id, home,
                          "" if rc == 0 else " (gpg: %s)" % _last_gpg_line(err)))
    return fprs


def id_matches(wanted: str, fpr) -> bool:
    """fwknop's GPG_REMOTE_ID test: the id is the fingerprint's tail (8 hex digits as
    libfko compares; 16 and 40 are accepted too), case-insensitive, optional 0x."""
    if not fpr:
        return False
    w = wanted.strip().upper()
    if w.startswith("0X"):
        w = w[2:]
    return bool(w) and len(w) <= len(fpr) and fpr.upper().endswith(w)


# ------------------------------------------------------------------ client side
def encrypt(exe: str, home: str, plaintext: bytes, recipient: str, signer=None,
            passphrase=None, use_agent: bool = False, timeout: float = 30.0) -> bytes:
    """Encrypt to ``recipient`` (and sign with ``signer``): gpg's binary output.

    As libfko: the recipient key is trusted as given (GPGME_ENCRYPT_ALWAYS_TRUST), and no
    other recipient is added. With ``use_agent`` gpg-agent supplies the passphrase (its own
    pinentry or cache); otherwise loopback with ``passphrase`` (None: the key has none)."""
    args = ["--trust-model", "always", "--no-encrypt-to", "--compress-algo", "none",
            "--recipient", recipient]
    if signer:
        args += ["--local-user", signer, "--sign"]
    args += ["--encrypt"]
    rc, out, st, err = run(exe, home, args, plaintext, None if use_agent else passphrase,
                           timeout, loopback=not use_agent)
    if rc == 0 and out:
        return out
    if st.has("INV_RECP") or st.has("NO_RECP"):
        raise GpgError("nokey", "GnuPG recipient key %s is not in %s (import the server's "
                       "public key: gpg --homedir %s --import server.asc)" % (recipient, home, home))
    if st.has("INV_SGNR") or st.has("NO_SGNR"):
        raise GpgError("nokey", "GnuPG signing key %s has no secret key in %s" % (signer, home))
    if st.bad_passphrase():
        raise GpgError("passphrase", "wrong passphrase for signing key %s" % signer)
    if st.wants_passphrase():
        raise GpgError("passphrase", "signing key %s needs a passphrase (GPG_SIGNING_PW, "
                       "--gpg-signing-pw-fd, a terminal prompt, or --gpg-agent)" % signer)
    raise GpgError("encrypt", "gpg could not encrypt/sign: %s" % _last_gpg_line(err))


# ------------------------------------------------------------------ fwknop framing
def seal(ciphertext: bytes, hmac_key=None, hmac_type: str = "sha256") -> str:
    """Wire text for gpg output: base64 minus '=' and minus ``hQ``, then the HMAC (over the
    text with ``hQ``) if a key is given."""
    full = b64encode(ciphertext)
    if not full.startswith(PREFIX):
        raise GpgError("framing", "the server's GnuPG key makes data starting %r, not %r: "
                       "fwknop's framing drops those two characters and the server puts 'hQ' "
                       "back, so only RSA encryption keys work (make the server key with "
                       "gpg --quick-gen-key NAME rsa3072 sign,encr)" % (full[:2], PREFIX))
    wire = full[len(PREFIX):]
    if hmac_key is not None:
        wire += hmac_b64(hmac_type, hmac_key, full.encode())
    if len(wire) > limits.MAX_SPA_PACKET_LEN:
        raise GpgError("framing", "GnuPG SPA data is %d characters; servers take at most %d "
                       "(use a 2048 or 3072-bit RSA server key)" % (len(wire), limits.MAX_SPA_PACKET_LEN))
    return wire


def hmac_ok(payload: bytes, hmac_type: str, hmac_key: bytes, mac=None) -> bool:
    """HMAC over ``hQ`` + ciphertext text, constant-time compare: the whole cost of junk
    for a GPG stanza with an HMAC key, paid before gpg is ever started."""
    n = b64_len(hmac_type)
    end = len(payload) - n
    if end < limits.MIN_SPA_ENCODED_MSG_SIZE:
        return False
    data = _PREFIX_B + payload[:end]
    raw = mac(data) if mac is not None else hmac_bytes(hmac_type, hmac_key, data)
    return equal(b64encode_bytes(raw), payload[end:])


def ciphertext(payload: bytes, hmac_type=None) -> bytes:
    """The OpenPGP bytes in a payload: HMAC cut off (if the stanza has one), ``hQ`` put back."""
    if hmac_type is not None:
        payload = payload[:len(payload) - b64_len(hmac_type)]
    if not payload.startswith(_PREFIX_B):
        payload = _PREFIX_B + payload
    return b64decode(payload, "GnuPG data")


def pkesk_key_ids(data: bytes):
    """Key ids (16 hex digits) named by the public-key packets that open an OpenPGP
    message, read without running gpg; None if the bytes do not start like one. A zero id
    is a hidden recipient (``--throw-keyids``)."""
    ids = []
    i = 0
    while i < len(data) and len(ids) < 8:
        tag_byte = data[i]
        if not tag_byte & 0x80:
            return None if not ids else ids
        if tag_byte & 0x40:                       # new format
            tag = tag_byte & 0x3F
            if i + 1 >= len(data):
                return None
            l0 = data[i + 1]
            if l0 < 192:
                hlen, blen = 2, l0
            elif l0 < 224 and i + 2 < len(data):
                hlen, blen = 3, ((l0 - 192) << 8) + data[i + 2] + 192
            elif l0 == 255 and i + 5 < len(data):
                hlen, blen = 6, int.from_bytes(data[i + 2:i + 6], "big")
            else:
                return None
        else:                                     # old format
            tag = (tag_byte >> 2) & 0x0F
            ltype = tag_byte & 3
            if ltype == 3:
                return None
            n = (1, 2, 4)[ltype]
            if i + 1 + n > len(data):
                return None
            hlen, blen = 1 + n, int.from_bytes(data[i + 1:i + 1 + n], "big")
        if tag != 1:                              # first non-PKESK packet ends the list
            return ids or None
        body = data[i + hlen:i + hlen + 9]
        if len(body) < 9 or body[0] != 3:
            return None
        ids.append(body[1:9].hex().upper())
        i += hlen + blen
    return ids or None
