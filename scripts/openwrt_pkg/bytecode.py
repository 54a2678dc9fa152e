"""Python bytecode as OpenWrt ships Python packages: compiled at build time, reproducible
(``unchecked-hash`` pycs: no source mtime inside, never re-validated on the router), for
the target's Python version, with the sources optional.

OpenWrt 24.10 has Python 3.11 and 25.12 has 3.13; a pyc is only valid for the version
that wrote it (magic number), so compiling needs that interpreter (``python3.X`` on PATH,
or the running one). Without it the package ships sources only and says so.
"""

import os
import shutil
import subprocess
import sys
import tempfile

# Runs under the target interpreter: compile (source, pyc, name shown in tracebacks) for
# each tab-separated line on stdin.
_COMPILER = r"""
import py_compile, sys
for line in sys.stdin.read().splitlines():
    src, cfile, dfile, opt = line.split("\t")
    py_compile.compile(src, cfile, dfile, doraise=True, optimize=int(opt),
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


class BytecodeUnavailable(Exception):
    """No interpreter of the target version on this machine."""


def find_python(version: str) -> str:
    """An interpreter of ``version`` (``3.13``): this one, or a python3.13 on PATH that
    runs and says it is that version (a pyenv shim without the version does not)."""
    if "%d.%d" % sys.version_info[:2] == version:
        return sys.executable
    path = shutil.which("python" + version)
    if path:
        try:
            r = subprocess.run([path, "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=30)
            if r.returncode == 0 and r.stdout.strip() == version:
                return path
        except OSError:
            pass
    raise BytecodeUnavailable("no working python%s on this machine" % version)


def compile_tree(sources: dict, version: str, install_dir: str, keep_sources: bool) -> dict:
    """``sources`` (relative path -> .py bytes) as the files to install below
    ``install_dir``: legacy ``x.pyc`` beside where ``x.py`` would be (``compileall -b``,
    importable without the source), or with ``keep_sources`` the ``.py`` plus
    ``__pycache__/x.cpython-3NN.pyc``.

    Sourceless pycs are compiled with ``optimize=2`` (no docstrings, no asserts): a legacy
    ``x.pyc`` is loaded whatever the interpreter's -O level, and spa-lite reads no
    docstring and relies on no assert at run time (a test checks), which halves the
    package. Beside sources the pyc must carry the plain name, so it is not optimized."""
    python = find_python(version)
    tag = "cpython-" + version.replace(".", "")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for rel, data in sorted(sources.items()):
            src = os.path.join(tmp, "src", rel)
            os.makedirs(os.path.dirname(src), exist_ok=True)
            with open(src, "wb") as fh:
                fh.write(data)
            head, name = os.path.split(rel)
            if keep_sources:
                pyc = os.path.join(head, "__pycache__", "%s.%s.pyc" % (name[:-3], tag))
                out[rel] = data
            else:
                pyc = rel[:-3] + ".pyc"
            jobs.append((src, os.path.join(tmp, "pyc", pyc), install_dir + "/" + rel,
                         "0" if keep_sources else "2", pyc))
        env = {"PYTHONHASHSEED": "0", "PATH": os.environ.get("PATH", "")}
        r = subprocess.run([python, "-S", "-X", "no_debug_ranges", "-c", _COMPILER], env=env, timeout=300,
                           input="".join("%s\t%s\t%s\t%s\n" % j[:4] for j in jobs),
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BytecodeUnavailable("python%s could not compile: %s"
                                      % (version, r.stderr.strip().splitlines()[-1:]))
        for _, cfile, _, _, pyc in jobs:
            with open(cfile, "rb") as fh:
                out[pyc.replace(os.sep, "/")] = fh.read()
    return out
