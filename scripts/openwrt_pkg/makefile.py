"""Read the variables and define blocks of an OpenWrt feed Makefile (enough of make's
syntax for a package Makefile: ``NAME:=value`` lines and ``define ... endef`` blocks)."""

import re


def read_makefile(path: str) -> dict:
    """Variables (first ``NAME:=value`` wins) and define blocks, ``$$`` unescaped."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    out = {}
    for m in re.finditer(r"^\s*([A-Z_0-9]+):=(.*)$", text, re.M):
        out.setdefault(m.group(1), m.group(2).strip())
    for m in re.finditer(r"^define (\S+)\n(.*?)^endef", text, re.M | re.S):
        out[m.group(1)] = m.group(2).replace("$$", "$")
    return out


def depends(value: str) -> list:
    """DEPENDS:=+a +b @COND -> ["a", "b"] (conditions are build-time only)."""
    return [d.lstrip("+") for d in value.split() if not d.startswith("@")]
