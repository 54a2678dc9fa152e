"""Real GnuPG homes for the tests and the benchmark: keys made with ``gpg --batch
--quick-gen-key``, exchanged and signed the way fwknop's guides do it.

The server key is RSA (fwknop's framing assumes the 'hQ' start an RSA public-key packet
gives); client keys are ed25519 (fast to make; signatures sit inside the encrypted data).
Each home has loopback pinentry (libgpgme's passphrase callback needs it with GnuPG 2) and a
gpg-agent that caches no passphrase, so a wrong one is always noticed.
"""

import os
import subprocess

GPG = "gpg"


class Home:
    def __init__(self, path: str, fpr: str, passphrase: str) -> None:
        self.path = path
        self.fpr = fpr
        self.passphrase = passphrase

    @property
    def keyid(self) -> str:       # 16 hex digits
        return self.fpr[-16:]

    @property
    def short(self) -> str:       # 8 hex digits, as the guides and GPG_REMOTE_ID use
        return self.fpr[-8:]


def gpg(home: str, *args, input=None, check=True):
    r = subprocess.run([GPG, "--homedir", home, "--batch", "--no-tty"] + list(args),
                       input=input, capture_output=True, timeout=60)
    if check and r.returncode != 0:
        raise RuntimeError("gpg %s: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return r


def make_home(path: str, name: str, algo: str, passphrase: str = "", usage=None) -> Home:
    """A new GNUPGHOME with one key (``algo`` e.g. rsa2048 or ed25519)."""
    os.makedirs(path, mode=0o700)
    with open(os.path.join(path, "gpg.conf"), "w") as fh:
        fh.write("pinentry-mode loopback\n")
    with open(os.path.join(path, "gpg-agent.conf"), "w") as fh:
        fh.write("allow-loopback-pinentry\ndefault-cache-ttl 0\nmax-cache-ttl 0\n")
    usage = usage or ("sign,encr" if algo.startswith("rsa") else "sign")
    gpg(path, "--pinentry-mode", "loopback", "--passphrase-fd", "0", "--quick-gen-key",
        "%s <%s@spa-lite.invalid>" % (name, name), algo, usage, "never",
        input=(passphrase + "\n").encode())
    out = gpg(path, "--with-colons", "--list-secret-keys").stdout.decode()
    fpr = [ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr:")][0]
    return Home(path, fpr, passphrase)


def export(home: Home) -> bytes:
    return gpg(home.path, "--armor", "--export", home.fpr).stdout


def import_and_sign(home: Home, other: Home, sign: bool = True) -> None:
    """``gpg --import other.asc`` then ``gpg --edit-key OTHER sign`` (batch form)."""
    gpg(home.path, "--import", input=export(other))
    if sign:
        gpg(home.path, "--pinentry-mode", "loopback", "--passphrase-fd", "0",
            "--quick-sign-key", other.fpr, input=(home.passphrase + "\n").encode())


def stop_agents(*homes) -> None:
    for h in homes:
        subprocess.run(["gpgconf", "--homedir", h.path, "--kill", "all"], capture_output=True,
                       timeout=20)
