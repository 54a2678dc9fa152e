"""The sans-IO SPA protocol core (fwknop 2.6.x wire format).

Pure functions from bytes/str to bytes/str: no sockets, no clock, no randomness (callers pass
time, the random value and the salt in), so every packet is reproducible in a test. Every
module here is a MicroPython-compatible subset: it imports only binascii, hashlib, os,
struct, sys, time (plus guarded, lazily imported CPython accelerators).
"""
