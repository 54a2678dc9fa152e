"""spa-lite: fwknop-compatible Single Packet Authorization in Python.

This file stays import-free on purpose: the protocol core under ``spa_lite.core`` must
import on MicroPython, and importing a subpackage runs this file first.
"""

__version__ = "0.1.0"
