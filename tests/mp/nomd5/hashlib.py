# Test shim: a hashlib without md5, like MicroPython on rp2 <= 1.26 or esp8266.
# Put this directory first on MICROPYPATH; spa_lite then uses its pure-Python MD5.
from uhashlib import sha1, sha256  # noqa: F401
