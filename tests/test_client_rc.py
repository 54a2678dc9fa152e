"""The client's rc file and key handling as fwknop users rely on it: diagnostics only for
the stanza in use, cron runs that never prompt, --save-rc-stanza/--force-stanza/
--stanza-list in fwknop's layout and mode 0600, keys from -G files, --stdin and --fd, -k into
a stanza, and usage errors that name the subcommand and fwknop's options."""

import os
import stat
import subprocess
import sys
import time

import pytest

from spa_lite.client.rcsave import save_stanza
from spa_lite.core import wire
from spa_lite.core.b64 import b64decode_key
from spa_lite.errors import UsageError
from tests.conftest import HMAC_KEY_B64, KEY_B64, REPO, run_cli

K, H = b64decode_key(KEY_B64), b64decode_key(HMAC_KEY_B64)
KEYS = ["--key-base64-rijndael", KEY_B64, "--key-base64-hmac", HMAC_KEY_B64]


def cli(tmp_path, *args, input="", **kw):
    r = run_cli(*args, input=input, env={"HOME": str(tmp_path)}, **kw)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def rc(tmp_path, text, mode=0o600):
    p = tmp_path / ".fwknoprc"
    p.write_text(text)
    os.chmod(p, mode)
    return p


HOME_STANZA = ("[home]\nSPA_SERVER 127.0.0.1\nACCESS tcp/22\nALLOW_IP 10.213.5.5\n"
               "KEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n" % (KEY_B64, HMAC_KEY_B64))
OTHER_STANZAS = ("[gpg]\nUSE_GPG Y\nGPG_RECIPIENT 1234ABCD\nSPA_SERVER 10.213.9.9\n"
                 "[broken]\nFROBNICATE 1\nACCESS\nWGET_CMD /usr/bin/wget\n")


# ------------------------------------------------------------------ diagnostics in scope
def test_other_stanzas_are_never_diagnosed(tmp_path):
    rc(tmp_path, "[default]\n\n" + OTHER_STANZAS + HOME_STANZA)
    r = cli(tmp_path, "send", "-T", "-n", "home")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert wire.parse(r.stdout.strip(), K, "cbc", H, "sha256").message == "10.213.5.5,tcp/22"
    # the stanza in use is still checked, with file and line
    r = cli(tmp_path, "send", "-T", "-n", "broken")
    assert r.returncode == 2 and ".fwknoprc:9: ACCESS has no value" in r.stderr


def test_default_stanza_is_diagnosed(tmp_path):
    p = rc(tmp_path, "[default]\nFROBNICATE 2\n\n" + HOME_STANZA)
    r = cli(tmp_path, "send", "-T", "-n", "home")
    assert r.returncode == 0 and "%s:2: unknown variable FROBNICATE" % p in r.stderr
    r = cli(tmp_path, "send", "-T", "-n", "home", "-q")
    assert r.returncode == 0 and r.stderr == ""


def test_cron_like_run_never_prompts_or_warns_for_other_stanzas(tmp_path):
    """No terminal, stdin closed: a missing key is one line and exit 3, immediately; nothing
    about stanzas not in use."""
    rc(tmp_path, "[default]\n" + OTHER_STANZAS + "[nokey]\nSPA_SERVER 127.0.0.1\nACCESS tcp/22\n"
       "ALLOW_IP 10.213.5.5\nUSE_HMAC Y\n" + HOME_STANZA)
    env = dict(os.environ, HOME=str(tmp_path), PYTHONPATH=REPO)
    env.pop("SPOOF_USER", None)
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "spa_lite", "send", "-n", "nokey"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                       timeout=20, start_new_session=True)     # no controlling terminal
    assert time.time() - t0 < 10
    assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "gpg" not in r.stderr.lower() and "FROBNICATE" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "spa_lite", "send", "-T", "-n", "home"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                       timeout=20, start_new_session=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_decode_has_quiet(tmp_path):
    rc(tmp_path, "[default]\n" + HOME_STANZA, mode=0o644)
    w = cli(tmp_path, "send", "-T", "-n", "home", "-q").stdout.strip()
    r = cli(tmp_path, "decode", "-n", "home", w)
    assert r.returncode == 0 and "chmod 600" in r.stderr
    r = cli(tmp_path, "decode", "-n", "home", "-q", w)
    assert r.returncode == 0 and r.stderr == "" and "10.213.5.5,tcp/22" in r.stdout


# ------------------------------------------------------------------ --save-rc-stanza
def test_save_rc_stanza_writes_fwknop_layout_0600(tmp_path):
    os.umask(0o022)
    r = cli(tmp_path, "send", "-T", "-n", "work", "--save-rc-stanza", "-D", "10.213.7.1",
            "-A", "tcp/22", "-s", "-m", "sha512", "-M", "ctr", "--hmac-digest-type", "sha384",
            "--time-offset-plus", "5m", "--time-offset-minus", "20", "-4", *KEYS)
    assert r.returncode == 0, r.stderr
    assert "not saved in the stanza" in r.stderr and ": -4\n" in r.stderr   # said, not lost
    p = tmp_path / ".fwknoprc"
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    text = p.read_text()
    assert "[default]" in text and "\n[work]\n" in text
    for var, val in (("SPA_SERVER", "10.213.7.1"), ("ACCESS", "tcp/22"), ("ALLOW_IP", "source"),
                     ("DIGEST_TYPE", "SHA512"), ("ENCRYPTION_MODE", "CTR"),
                     ("HMAC_DIGEST_TYPE", "SHA384"), ("TIME_OFFSET", "280"),
                     ("KEY_BASE64", KEY_B64), ("HMAC_KEY_BASE64", HMAC_KEY_B64)):
        assert "%-28s%s\n" % (var, val) in text
    # and it is what spa-lite then uses
    r = cli(tmp_path, "send", "-T", "-n", "work")
    m = wire.parse(r.stdout.strip(), K, "ctr", H, "sha384")
    assert (m.message, m.digest_type) == ("0.0.0.0,tcp/22", "sha512")
    r = cli(tmp_path, "send", "--stanza-list")
    assert r.stdout == "work\n"


def test_save_keeps_other_lines_and_asks_before_replacing_keys(tmp_path):
    p = rc(tmp_path, "# mine\n[default]\nVERBOSE N\n\n[home]\n# the router\nSPA_SERVER 10.213.1.1\n"
           "ACCESS udp/53\nKEY_BASE64 %s\n\n[other]\nACCESS tcp/1\n" % KEY_B64, mode=0o644)
    r = cli(tmp_path, "send", "-T", "-n", "home", "--save-rc-stanza", "-A", "tcp/22",
            "-a", "10.213.1.2", "--key-base64-hmac", HMAC_KEY_B64)
    assert r.returncode == 0, r.stderr
    text = p.read_text()
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert text.startswith("# mine\n[default]\nVERBOSE N\n")
    assert "# the router\nSPA_SERVER 10.213.1.1\n%-28s%s\n" % ("ACCESS", "tcp/22") in text
    assert "udp/53" not in text and "\n[other]\nACCESS tcp/1\n" in text
    assert "%-28s%s\n" % ("ALLOW_IP", "10.213.1.2") in text
    # a different key: refused without a terminal, replaced with --force-stanza
    r = cli(tmp_path, "send", "-T", "-n", "home", "--save-rc-stanza", "--key-rijndael", "new")
    assert r.returncode == 2 and "--force-stanza" in r.stderr and "KEY_BASE64" in r.stderr
    assert p.read_text() == text
    r = cli(tmp_path, "send", "-T", "-n", "home", "--save-rc-stanza", "--force-stanza",
            "--key-rijndael", "new", "-A", "tcp/2", "-a", "10.213.1.3", "-D", "10.213.1.1")
    assert r.returncode == 0, r.stderr
    new = p.read_text()
    assert "KEY_BASE64" not in new.split("[other]")[0].split("[home]")[1]
    assert "# the router" in new and "ACCESS tcp/1" in new
    assert cli(tmp_path, "send", "--stanza-list").stdout == "home\nother\n"


def test_save_stanza_unit_edges(tmp_path):
    p = str(tmp_path / "rc")
    save_stanza(p, "a", [("ACCESS", "tcp/1")])
    save_stanza(p, "b", [("ACCESS", "tcp/2")])
    save_stanza(p, "a", [("KEY", "x"), ("ACCESS", "tcp/3")])
    text = open(p).read()
    assert text.count("[a]") == 1 and text.index("[a]") < text.index("[b]")
    assert "%-28s%s\n%-28s%s\n" % ("ACCESS", "tcp/3", "KEY", "x") in text
    with pytest.raises(UsageError):
        save_stanza(p, "a", [("KEY_BASE64", KEY_B64)])           # other form of a held key
    assert not save_stanza(p, "a", [("KEY_BASE64", KEY_B64)], confirm=lambda q: True) is None
    assert "KEY " not in open(p).read()
    with pytest.raises(UsageError):
        save_stanza(p, "bad]name", [("ACCESS", "tcp/1")])
    leftovers = [f for f in os.listdir(tmp_path) if ".tmp." in f]
    assert leftovers == []


def test_keygen_into_a_stanza(tmp_path):
    r = cli(tmp_path, "send", "-k", "-n", "fresh", "--save-rc-stanza", "-D", "127.0.0.1",
            "-A", "tcp/22", "-a", "10.213.1.9")
    assert r.returncode == 0 and r.stdout == "", r.stderr
    text = (tmp_path / ".fwknoprc").read_text()
    assert "KEY_BASE64" in text and "HMAC_KEY_BASE64" in text and "USE_HMAC" in text
    r = cli(tmp_path, "send", "-T", "-n", "fresh")
    assert r.returncode == 0, r.stderr
    r = cli(tmp_path, "send", "-K", str(tmp_path / "keys"))        # -K alone, as fwknop
    assert r.returncode == 0 and stat.S_IMODE(os.stat(tmp_path / "keys").st_mode) == 0o600
    assert (tmp_path / "keys").read_text().startswith("KEY_BASE64: ")


# ------------------------------------------------------------------ keys out of rc files
BASE = ["send", "-T", "--no-rc-file", "-D", "10.213.3.1", "-A", "tcp/22", "-a", "10.213.3.2"]


def test_get_key_file_fwknop_semantics(tmp_path):
    kf = tmp_path / "keys"
    kf.write_text("# keys\n10.213.3.10: notthis\n10.213.3.1: first\n  10.213.3.1:  secret\n")
    hf = tmp_path / "hkeys"
    hf.write_text("10.213.3.1: hsecret\n")
    r = cli(tmp_path, *BASE, "-G", str(kf), "--get-hmac-key", str(hf))
    assert r.returncode == 0, r.stderr
    assert wire.parse(r.stdout.strip(), b"secret", "cbc", b"hsecret", "sha256")
    r = cli(tmp_path, "send", "-T", "--no-rc-file", "-D", "10.213.3.99", "-A", "tcp/22",
            "-a", "10.213.3.2", "-G", str(kf))
    assert r.returncode == 3 and "no encryption key for 10.213.3.99" in r.stderr
    # the command line's -G beats an rc key; an rc KEY beats an rc KEY_FILE (as fwknop)
    rc(tmp_path, "[s]\nSPA_SERVER 10.213.3.1\nACCESS tcp/22\nALLOW_IP 10.213.3.2\nKEY rckey\n"
       "KEY_FILE %s\n" % kf)
    r = cli(tmp_path, "send", "-T", "-n", "s")
    assert wire.parse(r.stdout.strip(), b"rckey", "cbc", None, "sha256")
    r = cli(tmp_path, "send", "-T", "-n", "s", "-G", str(kf))
    assert wire.parse(r.stdout.strip(), b"secret", "cbc", None, "sha256")


def test_keys_from_stdin_and_fd(tmp_path):
    r = cli(tmp_path, *BASE, "--use-hmac", "--stdin", input="enc one\nhmac two\n")
    assert r.returncode == 0, r.stderr
    assert wire.parse(r.stdout.strip(), b"enc one", "cbc", b"hmac two", "sha256")
    rfd, wfd = os.pipe()
    os.write(wfd, b"fdkey\n")
    os.close(wfd)
    try:
        env = dict(os.environ, HOME=str(tmp_path), PYTHONPATH=REPO)
        r = subprocess.run([sys.executable, "-m", "spa_lite"] + BASE + ["--fd", str(rfd)],
                           pass_fds=(rfd,), capture_output=True, text=True, env=env, timeout=20,
                           stdin=subprocess.DEVNULL)
    finally:
        os.close(rfd)
    assert r.returncode == 0, r.stderr
    assert wire.parse(r.stdout.strip(), b"fdkey", "cbc", None, "sha256")
    r = cli(tmp_path, *BASE, "--stdin", input="")
    assert r.returncode == 3 and "empty line" in r.stderr


# ------------------------------------------------------------------ usage errors
@pytest.mark.parametrize("argv,usage,line", [
    (["send", "--wget-cmd", "/usr/bin/wget"], "usage: spa-lite send",
     "fwknop's option --wget-cmd is not supported by spa-lite"),
    (["send", "-l"], "usage: spa-lite send", "fwknop's option -l is not supported"),
    (["connect", "--http-proxy=x", "h", "22"], "usage: spa-lite connect",
     "fwknop's option --http-proxy is not supported"),
    (["server", "--rotate-digest-cache"], "usage: spa-lite server",
     "fwknopd's option --rotate-digest-cache is not supported"),
    (["send", "--frobnicate"], "usage: spa-lite send", "unknown option --frobnicate"),
    (["decode", "a", "b"], "usage: spa-lite decode", "unexpected argument 'b'"),
])
def test_usage_errors_name_the_subcommand_and_fwknops_options(tmp_path, argv, usage, line):
    r = cli(tmp_path, *argv)
    assert r.returncode == 2
    assert r.stderr.startswith(usage), r.stderr
    assert line in r.stderr.strip().splitlines()[-1], r.stderr


def test_R_is_an_option_now(tmp_path):
    r = cli(tmp_path, "send", "-T", "--no-rc-file", "-R", "--resolve-url", "ftp://x", "-A",
            "tcp/22", "-D", "127.0.0.1", *KEYS)
    assert r.returncode == 2 and "resolver URL 'ftp://x'" in r.stderr
