"""``spa-lite send`` in GnuPG mode: fwknop's GPG options and rc variables, the same meanings.

    USE_GPG Y                 -g/--gpg-encryption (implied by a recipient)
    GPG_RECIPIENT  id         --gpg-recipient-key, --gpg-recip: the server's key
    GPG_SIGNER     id         --gpg-signer-key, --gpg-sign: your key (fwknopd wants a signature)
    GPG_HOMEDIR    dir        --gpg-home-dir (default $GNUPGHOME, else ~/.gnupg)
    GPG_EXE        path       --gpg-exe (default gpg on PATH)
    USE_GPG_AGENT  Y          --gpg-agent: gpg-agent supplies the signing passphrase
    GPG_NO_SIGNING_PW Y       --gpg-no-signing-pw: the signing key has no passphrase
    GPG_SIGNING_PW / GPG_SIGNING_PW_BASE64  (rc only) the signing passphrase

Otherwise the passphrase is read from ``--gpg-signing-pw-fd N`` or asked for at a terminal;
it is never taken from argv. An HMAC key (HMAC_KEY_BASE64, --key-base64-hmac...) adds the
HMAC over the GnuPG data as fwknop 2.5+ does.
"""

import os

from spa_lite import gpg
from spa_lite.core import message
from spa_lite.core.b64 import b64decode_key
from spa_lite.core.errors import SpaError
from spa_lite.errors import CryptoError, UsageError

# argparse dest -> (fwknoprc variable, flag), merged into commands.SEND_OPTIONS
OPTIONS = {
    "gpg_encryption": ("USE_GPG", "-g/--gpg-encryption"),
    "gpg_recipient_key": ("GPG_RECIPIENT", "--gpg-recipient-key"),
    "gpg_signer_key": ("GPG_SIGNER", "--gpg-signer-key"),
    "gpg_home_dir": ("GPG_HOMEDIR", "--gpg-home-dir"),
    "gpg_exe": ("GPG_EXE", "--gpg-exe"),
    "gpg_agent": ("USE_GPG_AGENT", "--gpg-agent"),
    "gpg_no_signing_pw": ("GPG_NO_SIGNING_PW", "--gpg-no-signing-pw"),
}
RC_VARS = ("USE_GPG", "USE_GPG_AGENT", "GPG_RECIPIENT", "GPG_SIGNER", "GPG_HOMEDIR",
           "GPG_EXE", "GPG_NO_SIGNING_PW", "GPG_SIGNING_PW", "GPG_SIGNING_PW_BASE64")


def add_arguments(s) -> None:
    """The GnuPG options of ``spa-lite send`` (fwknop's names and aliases)."""
    g = s.add_argument_group("GnuPG (fwknop option names)")
    g.add_argument("-g", "--gpg-encryption", action="store_true", help="GnuPG SPA (USE_GPG)")
    g.add_argument("--gpg-recipient-key", "--gpg-recip", metavar="ID",
                   help="server's key (GPG_RECIPIENT); implies -g")
    g.add_argument("--gpg-signer-key", "--gpg-sign", metavar="ID", help="your signing key (GPG_SIGNER)")
    g.add_argument("--gpg-home-dir", metavar="DIR", help="GnuPG home (GPG_HOMEDIR)")
    g.add_argument("--gpg-exe", metavar="PATH", help="gpg program (GPG_EXE)")
    g.add_argument("--gpg-agent", action="store_true", help="let gpg-agent supply the passphrase")
    g.add_argument("--gpg-no-signing-pw", action="store_true", help="signing key has no passphrase")
    g.add_argument("--gpg-signing-pw-fd", type=int, metavar="N",
                   help="read the signing passphrase (one line) from file descriptor N")


class GpgSend:
    """Resolved GnuPG settings for one packet."""

    def __init__(self) -> None:
        self.exe = "gpg"
        self.home = None
        self.recipient = None
        self.signer = None
        self.passphrase = None    # bytes, or None: none / gpg-agent
        self.use_agent = False


def _flag(get, var: str) -> bool:
    s = get(var)
    if s is None:
        return False
    v = str(s.value).strip().upper()
    if v in ("Y", "YES", "1", "TRUE", "ON"):
        return True
    if v in ("N", "NO", "0", "FALSE", "OFF"):
        return False
    raise UsageError("%s: %s must be Y or N, not %r" % (s.where, var, s.value))


def settings(get, prompt=None, pw_fd=None):
    """GpgSend from ``get(VAR)``, or None when the packet is not a GnuPG one."""
    recip = get("GPG_RECIPIENT")
    if not _flag(get, "USE_GPG") and recip is None:
        return None
    if recip is None or not str(recip.value).strip():
        raise UsageError("GnuPG SPA needs the server's key: --gpg-recipient-key ID or "
                         "GPG_RECIPIENT in the rc stanza")
    g = GpgSend()
    g.recipient = str(recip.value).strip()
    exe = get("GPG_EXE")
    try:
        g.exe = gpg.find_exe(str(exe.value).strip() if exe else "gpg")
    except gpg.GpgError as exc:
        raise UsageError("%s: %s" % (exe.where if exe else "GPG_EXE", exc))
    home = get("GPG_HOMEDIR")
    g.home = os.path.expanduser(str(home.value).strip()) if home else (
        os.environ.get("GNUPGHOME") or os.path.join(os.path.expanduser("~"), ".gnupg"))
    bad = gpg.home_problem(g.home)
    if bad:
        raise UsageError("%s: %s" % (home.where if home else "GPG_HOMEDIR", bad))
    signer = get("GPG_SIGNER")
    if signer is None:
        return g
    g.signer = str(signer.value).strip()
    g.use_agent = _flag(get, "USE_GPG_AGENT")
    if _flag(get, "GPG_NO_SIGNING_PW") or g.use_agent:
        return g
    g.passphrase = _passphrase(get, prompt, pw_fd, g.signer)
    return g


def _passphrase(get, prompt, pw_fd, signer: str) -> bytes:
    raw, b64 = get("GPG_SIGNING_PW"), get("GPG_SIGNING_PW_BASE64")
    if raw is not None and b64 is not None:
        raise UsageError("%s and %s: give the signing passphrase in one form only"
                         % (raw.where, b64.where))
    if b64 is not None:
        try:
            return b64decode_key(str(b64.value), "%s: GPG_SIGNING_PW_BASE64" % b64.where)
        except SpaError as exc:
            raise UsageError(str(exc))
    if raw is not None:
        return str(raw.value).encode()
    if pw_fd is not None:
        try:
            with os.fdopen(pw_fd, "rb", closefd=True) as fh:
                line = fh.readline(4096)
        except OSError as exc:
            raise UsageError("--gpg-signing-pw-fd %d: %s" % (pw_fd, exc.strerror or exc))
        return line.rstrip(b"\r\n")
    if prompt is None:
        raise CryptoError("signing key %s needs a passphrase: GPG_SIGNING_PW in the rc stanza, "
                          "--gpg-signing-pw-fd N, --gpg-agent, or --gpg-no-signing-pw for a key "
                          "without one" % signer)
    return prompt("Enter passphrase for signing key %s: " % signer).encode()


def seal(req) -> str:
    """The wire text of ``req`` (a SendRequest with ``gpg`` set): gpg, then fwknop's framing."""
    g = req.gpg
    if req.hmac_key is not None and not 0 < len(req.hmac_key) <= 128:
        raise CryptoError("the HMAC key must be 1..128 bytes")
    plaintext = message.encode(req.message).encode()
    try:
        ct = gpg.encrypt(g.exe, g.home, plaintext, g.recipient, g.signer, g.passphrase,
                         g.use_agent)
        return gpg.seal(ct, req.hmac_key, req.hmac_type)
    except gpg.GpgError as exc:
        raise (UsageError if exc.code in ("missing", "framing") else CryptoError)(str(exc))
