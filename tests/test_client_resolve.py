"""``-R``: the client asks a web service for its address. A real HTTPS resolver runs in a
network namespace with a test CA made here by the openssl CLI; the client runs in another
and must get its own veth address back (IPv4 and IPv6, chosen with -4/-6), refuse a wrong
certificate, a garbage or ambiguous answer and a silent server, each with one line and exit 4.
"""

import os
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from spa_lite.client.resolve import parse_answer
from spa_lite.core import wire
from spa_lite.core.b64 import b64decode_key
from tests.conftest import HMAC_KEY_B64, KEY_B64, REPO, need_root, need_tool
from tests.netns import Lab

RES4, CLI4, RES6, CLI6 = "10.213.80.1", "10.213.80.2", "fd13:80::1", "fd13:80::2"
NAME = "resolver.test"
KEYS = ["--key-base64-rijndael", KEY_B64, "--key-base64-hmac", HMAC_KEY_B64]
ENV = dict(os.environ, PYTHONPATH=REPO, HOME="/nonexistent")

# The resolver: answers with the caller's address, shaped by the path. Port 8443 has a
# certificate from the test CA, 8444 one from a CA the client does not trust, 8445 one
# from the test CA but for another name.
RESOLVER = r'''
import http.server, socketserver, ssl, sys, threading, time, socket

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        peer = self.client_address[0]
        if peer.startswith("::ffff:"):
            peer = peer[7:]
        body = {"/plain": peer, "/fwknop": peer + "\n", "/json": '{"ip": "%s"}' % peer,
                "/garbage": "<html><body>rate limited</body></html>",
                "/two": peer + " 192.0.2.7\n", "/trailing": peer + " (seen via proxy)\r\n"
                }.get(self.path)
        if self.path == "/slow":
            time.sleep(30)
            body = peer
        if body is None:
            self.send_response(404); self.end_headers(); return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass

class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

d = sys.argv[1]
for port, cert in ((8443, "good"), (8444, "rogue"), (8445, "wrongname")):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain("%s/%s.pem" % (d, cert), "%s/%s.key" % (d, cert))
    srv = S(("::", port), H)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
plain = S(("::", 8080), H)
threading.Thread(target=plain.serve_forever, daemon=True).start()
print("ready", flush=True)
time.sleep(600)
'''


def openssl(*args, cwd):
    subprocess.run([need_tool("openssl")] + list(args), cwd=cwd, check=True,
                   capture_output=True, timeout=60)


def make_pki(d):
    """A test CA, a rogue CA, and three server certificates (good, rogue, wrong name)."""
    for ca in ("ca", "rogueca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", ca + ".key", "-out", ca + ".pem", "-days", "2",
                "-subj", "/CN=spa-lite test %s" % ca, cwd=d)
    for name, ca, san in (("good", "ca", "DNS:%s,IP:%s,IP:%s" % (NAME, RES4, RES6)),
                          ("rogue", "rogueca", "DNS:%s,IP:%s,IP:%s" % (NAME, RES4, RES6)),
                          ("wrongname", "ca", "DNS:other.test,IP:10.213.81.9")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name, cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as fh:
            fh.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n" % san)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext",
                cwd=d)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    need_root()
    d = str(tmp_path_factory.mktemp("pki"))
    make_pki(d)
    script = os.path.join(d, "resolver.py")
    with open(script, "w") as fh:
        fh.write(RESOLVER)
    with Lab("spar") as lab:
        res, cli = lab.pair("res", "cli", RES4, CLI4, RES6, CLI6)
        # `ip netns exec` shows /etc/netns/NS/hosts as /etc/hosts: a name with both families
        etc = "/etc/netns/" + cli
        os.makedirs(etc, exist_ok=True)
        try:
            with open(etc + "/hosts", "w") as fh:
                fh.write("127.0.0.1 localhost\n%s %s\n%s %s\n" % (RES4, NAME, RES6, NAME))
            p = lab.spawn(res, sys.executable, script, d, stdout=subprocess.PIPE, text=True)
            assert p.stdout.readline().strip() == "ready"
            lab.cli, lab.d = cli, d
            yield lab
        finally:
            subprocess.run(["rm", "-rf", etc])


def knock_t(net, *args, ca=True, timeout=30):
    argv = [sys.executable, "-m", "spa_lite", "send", "--no-rc-file", "-T", "-A", "tcp/22",
            "-D", RES4] + KEYS + (["--resolve-ca-file", net.d + "/ca.pem"] if ca else []) + list(args)
    r = net.run(net.cli, *argv, check=False, env=ENV, timeout=timeout)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def allow_ip(r):
    assert r.returncode == 0, r.stderr
    m = wire.parse(r.stdout.strip(), b64decode_key(KEY_B64), "cbc", b64decode_key(HMAC_KEY_B64),
                   "sha256")
    return m.message.split(",")[0]


@pytest.mark.parametrize("path", ["plain", "fwknop", "json", "trailing"])
def test_https_resolver_answers_v4_and_v6(net, path):
    assert allow_ip(knock_t(net, "-R", "--resolve-url", "https://%s:8443/%s" % (RES4, path))) == CLI4
    assert allow_ip(knock_t(net, "-R", "--resolve-url", "https://[%s]:8443/%s" % (RES6, path))) == CLI6


def test_family_choice_by_name(net):
    url = "https://%s:8443/plain" % NAME
    assert allow_ip(knock_t(net, "-4", "-R", "--resolve-url", url)) == CLI4
    assert allow_ip(knock_t(net, "-6", "-R", "--resolve-url", url)) == CLI6


def test_rc_stanza_that_fwknop_writes_for_R(net, tmp_path):
    """ALLOW_IP resolve, RESOLVE_IP_HTTPS Y and RESOLVE_URL in an rc stanza (issue 12:
    this was 'no allow IP', exit 2)."""
    rc = tmp_path / "rc"
    for lines in ("RESOLVE_IP_HTTPS            Y\n", "ALLOW_IP resolve\n", "RESOLVE_IP_HTTP Y\n"):
        rc.write_text("[default]\n\n[home]\nSPA_SERVER %s\nACCESS tcp/22\n%sRESOLVE_URL "
                      "https://%s:8443/fwknop\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n"
                      % (RES4, lines, RES4, KEY_B64, HMAC_KEY_B64))
        os.chmod(rc, 0o600)
        r = net.run(net.cli, sys.executable, "-m", "spa_lite", "send", "-T", "--rc-file", str(rc),
                    "-n", "home", "--resolve-ca-file", net.d + "/ca.pem", check=False, env=ENV)
        assert allow_ip(r) == CLI4, lines
    # -a on the command line beats the stanza's resolve (fwknop: "-a overrides -R")
    r = net.run(net.cli, sys.executable, "-m", "spa_lite", "send", "-T", "--rc-file", str(rc),
                "-n", "home", "-a", "10.213.80.77", check=False, env=ENV)
    assert allow_ip(r) == "10.213.80.77"


def one_line_failure(r, *words):
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_untrusted_certificate(net):
    one_line_failure(knock_t(net, "-R", "--resolve-url", "https://%s:8444/plain" % RES4),
                     "certificate", "8444")
    # without the CA file even the good one is refused (verification is always on)
    one_line_failure(knock_t(net, "-R", "--resolve-url", "https://%s:8443/plain" % RES4, ca=False),
                     "certificate", "--resolve-ca-file")


def test_certificate_for_another_name(net):
    one_line_failure(knock_t(net, "-R", "--resolve-url", "https://%s:8445/plain" % RES4),
                     "certificate", "8445")


@pytest.mark.parametrize("path,word", [("garbage", "does not start with an IP"),
                                        ("two", "more than one address"),
                                        ("missing", "HTTP status 404")])
def test_bad_answers(net, path, word):
    one_line_failure(knock_t(net, "-R", "--resolve-url", "https://%s:8443/%s" % (RES4, path)), word)


def test_timeout_is_short_and_said(net):
    import time
    t0 = time.time()
    r = knock_t(net, "-R", "--resolve-url", "https://%s:8443/slow" % RES4, "--resolve-timeout", "1")
    assert time.time() - t0 < 8
    one_line_failure(r, "no answer within 1 s")


def test_plain_http_only_when_asked_and_with_a_warning(net):
    r = knock_t(net, "--resolve-http-only", "--resolve-url", "http://%s:8080/plain" % RES4)
    assert allow_ip(r) == CLI4 and "not https" in r.stderr
    r = knock_t(net, "-q", "--resolve-http-only", "--resolve-url", "http://%s:8080/plain" % RES4)
    assert allow_ip(r) == CLI4 and r.stderr == ""


def test_unreachable_resolver(net):
    one_line_failure(knock_t(net, "-R", "--resolve-url", "https://10.213.80.1:9/plain",
                             "--resolve-timeout", "2"), "10.213.80.1:9")


# ------------------------------------------------------------------ the answer parser
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: "%d.%d.%d.%d" % t).filter(
    lambda a: not a.startswith("0.") and int(a.split(".")[0]) < 224)


@given(ipv4, st.sampled_from(["", "\n", "\r\n", " \n", "\n\n", " via proxy\n"]))
def test_parse_answer_takes_the_one_address(addr, tail):
    assert parse_answer((addr + tail).encode()) == addr


@given(ipv4, ipv4)
def test_parse_answer_refuses_two_addresses(a, b):
    with pytest.raises(ValueError):
        parse_answer(("%s %s" % (a, b)).encode())


@given(st.binary(max_size=64))
def test_parse_answer_never_crashes(data):
    try:
        out = parse_answer(data)
    except ValueError:
        return
    import ipaddress
    assert ipaddress.ip_address(out)


def test_parse_answer_refusals():
    for bad in (b"", b"0.0.0.0", b"::", b"ff02::1", b"224.0.0.1", b"1.2.3", b"1.2.3.4.5",
                b"{\"ip\": 7}", b"{nope", "1.2.3.4\u00e9".encode()):
        with pytest.raises(ValueError):
            parse_answer(bad)
    assert parse_answer(b'{"ip": "2001:db8::7"}') == "2001:db8::7"


def test_without_ssl_module_https_says_what_to_install(monkeypatch):
    """OpenWrt's python3-light has no ssl: -R over HTTPS says which package, not a traceback."""
    from spa_lite.client import resolve
    from spa_lite.errors import UsageError
    monkeypatch.setitem(sys.modules, "ssl", None)
    with pytest.raises(UsageError, match="python3-openssl"):
        resolve.resolve_external_ip("https://%s:8443/plain" % RES4)


def test_url_forms():
    from spa_lite.client.resolve import split_url
    from spa_lite.errors import UsageError
    assert split_url("https://[fd13:80::1]:8443/ip?x=1") == ("https", "fd13:80::1", 8443, "/ip?x=1")
    assert split_url("HTTP://Resolver.Test") == ("http", "Resolver.Test", 80, "/")
    for bad in ("ftp://x/", "https://", "https://a b/", "https://x:0/", "https://x:70000/",
                "https://user@x/", "//x/"):
        with pytest.raises(UsageError):
            split_url(bad)
