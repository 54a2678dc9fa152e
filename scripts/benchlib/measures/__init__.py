"""One module per measurement; adding a result is adding one module here.

A measurement module declares:

- ``ORDER``: its place in the table (the existing ones are 10, 20, ... so a new one slots in);
- ``NAMES``: the result names it produces (``--only`` accepts them);
- ``run(ctx) -> list``: the results (``common.make_result``), raising ``BenchError`` (or
  ``Missing``) when one cannot be made, which the harness turns into null results;
- ``target(r) -> (text, met)``: the goal and whether this result meets it (met None: cannot
  be judged);
- optionally ``beside(r) -> list``: lines printed under the table for a result.

``discover()`` imports every module in this package, so nothing else needs editing."""

import importlib
import pkgutil


def discover() -> list:
    """Every measurement module, in table order."""
    mods = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module("%s.%s" % (__name__, info.name))
        if hasattr(mod, "NAMES"):
            mods.append(mod)
    return sorted(mods, key=lambda m: (m.ORDER, m.__name__))


def result_names(mods=None) -> list:
    """Every result name, in table order."""
    return [n for m in (mods or discover()) for n in m.NAMES]


def module_of(name: str, mods=None):
    """The module that produces result ``name`` (None for an unknown name)."""
    return next((m for m in (mods or discover()) if name in m.NAMES), None)
