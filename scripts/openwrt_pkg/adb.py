"""A writer for apk-tools v3's ADB tree (doc/apk-v3.5.scd): tagged 32-bit little-endian
values (4 type bits, 28 value bits), indirect values stored at an offset from the start of
the ADB block's payload, arrays and objects as slot lists whose slot 0 is the slot count.

Layout rules as apk-tools writes them (src/adb.c): the payload starts with an 8-byte
header (compat version 0, version 0, 2 reserved bytes, root value); a blob is a 1-, 2- or
4-byte length followed by its bytes, aligned to the length's size, and an empty blob is
NULL; integers below 2**28 are immediate, larger ones an aligned 32-bit (or 64-bit) word;
an object or array drops its trailing NULL slots and is NULL when none is left; identical
pieces of data are stored once.
"""

import struct

T_SPECIAL, T_INT, T_INT32, T_INT64 = 0x0, 0x1, 0x2, 0x3
T_BLOB8, T_BLOB16, T_BLOB32, T_ARRAY, T_OBJECT = 0x8, 0x9, 0xA, 0xD, 0xE
NULL = 0
VALUE_MASK = 0x0FFFFFFF
HEADER_SIZE = 8


def tag(kind: int, value: int) -> int:
    assert 0 <= value <= VALUE_MASK, "ADB offset or value out of range"
    return (kind << 28) | value


class AdbWriter:
    def __init__(self) -> None:
        self.buf = bytearray(HEADER_SIZE)
        self._seen = {}

    def _raw(self, data: bytes, align: int, dedup: bool = True) -> int:
        key = (bytes(data), align)
        if dedup and key in self._seen:
            return self._seen[key]
        self.buf += b"\0" * (-len(self.buf) % align)
        off = len(self.buf)
        self.buf += data
        if dedup:
            self._seen[key] = off
        return off

    def blob(self, data: bytes) -> int:
        n = len(data)
        if n == 0:
            return NULL
        if n <= 0xFF:
            return tag(T_BLOB8, self._raw(struct.pack("<B", n) + data, 1))
        if n <= 0xFFFF:
            return tag(T_BLOB16, self._raw(struct.pack("<H", n) + data, 2))
        return tag(T_BLOB32, self._raw(struct.pack("<I", n) + data, 4))

    def blob_placeholder(self, n: int):
        """A blob of ``n`` zero bytes never shared with other data, and the offset of its
        bytes, to be filled in after the tree is complete (the package hash)."""
        assert 0 < n <= 0xFF
        off = self._raw(struct.pack("<B", n) + b"\0" * n, 1, dedup=False)
        return tag(T_BLOB8, off), off + 1

    def string(self, text: str) -> int:
        return self.blob(text.encode("utf-8"))

    def int(self, v: int) -> int:
        if v < 0:
            raise ValueError("ADB integers are unsigned")
        if v <= VALUE_MASK:
            return tag(T_INT, v)
        if v <= 0xFFFFFFFF:
            return tag(T_INT32, self._raw(struct.pack("<I", v), 4))
        return tag(T_INT64, self._raw(struct.pack("<Q", v), 8))

    def _slots(self, kind: int, slots) -> int:
        while slots and slots[-1] == NULL:
            slots = slots[:-1]
        if not slots:
            return NULL
        words = [len(slots) + 1] + list(slots)
        return tag(kind, self._raw(struct.pack("<%dI" % len(words), *words), 4))

    def obj(self, fields: dict) -> int:
        """An object from {field index (1..): value}; missing fields are NULL."""
        n = max(fields) if fields else 0
        return self._slots(T_OBJECT, [fields.get(i, NULL) for i in range(1, n + 1)])

    def array(self, values) -> int:
        return self._slots(T_ARRAY, [v for v in values if v != NULL])

    def finish(self, root: int) -> bytes:
        """The payload with its header; the root value goes into the header."""
        struct.pack_into("<BBHI", self.buf, 0, 0, 0, 0, root)
        return bytes(self.buf)


# blocks (src/adb.h): a 32-bit word, type in the top 2 bits, size (header included) in
# the low 30; the next block starts at the next multiple of 8
BLOCK_ADB, BLOCK_SIG, BLOCK_DATA = 0, 1, 2


def block(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    if size > 0x3FFFFFFF:
        raise ValueError("ADB block too large for the short block header")
    out = struct.pack("<I", (kind << 30) | size) + payload
    return out + b"\0" * (-len(out) % 8)
