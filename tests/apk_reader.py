"""An apk-tools v3 package reader written for the tests from apk-tools' documentation
(doc/apk-v3.5.scd, doc/apk-package.5.scd) and the schema numbers of src/apk_adb.h, kept
apart from scripts/openwrt_pkg (it imports nothing from it) so that a misunderstanding in
the writer is not mirrored here. It is strict: every offset is bounds-checked, every
indirect value checked for its alignment, every block size and the block order checked,
and anything unexpected raises ApkFormatError.
"""

import hashlib
import struct
import zlib


class ApkFormatError(ValueError):
    pass


# value types: the high 4 bits of a tag word (apk-v3(5), WIRE FORMAT)
SPECIAL, INT, INT32, INT64, BLOB8, BLOB16, BLOB32, ARRAY, OBJECT = (
    0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xD, 0xE)

# schemas: field number -> (name, kind); kinds: "str", "int", "hex", an object schema
# (a dict) or ("array", item kind)
DEPENDENCY = {1: ("name", "str"), 2: ("version", "str"), 3: ("match", "int")}
PKGINFO = {
    1: ("name", "str"), 2: ("version", "str"), 3: ("hashes", "hex"),
    4: ("description", "str"), 5: ("arch", "str"), 6: ("license", "str"),
    7: ("origin", "str"), 8: ("maintainer", "str"), 9: ("url", "str"),
    10: ("repo-commit", "hex"), 11: ("build-time", "int"), 12: ("installed-size", "int"),
    13: ("file-size", "int"), 14: ("provider-priority", "int"),
    15: ("depends", ("array", DEPENDENCY)), 16: ("provides", ("array", DEPENDENCY)),
    17: ("replaces", ("array", DEPENDENCY)), 18: ("install-if", ("array", DEPENDENCY)),
    19: ("recommends", ("array", DEPENDENCY)), 20: ("layer", "int"),
    21: ("tags", ("array", "str")),
}
ACL = {1: ("mode", "int"), 2: ("user", "str"), 3: ("group", "str"),
       4: ("xattrs", ("array", "hex"))}
FILE = {1: ("name", "str"), 2: ("acl", ACL), 3: ("size", "int"), 4: ("mtime", "int"),
        5: ("hash", "hex"), 6: ("target", "hex")}
DIR = {1: ("name", "str"), 2: ("acl", ACL), 3: ("files", ("array", FILE))}
SCRIPTS = {1: ("trigger", "str"), 2: ("pre-install", "str"), 3: ("post-install", "str"),
           4: ("pre-deinstall", "str"), 5: ("post-deinstall", "str"),
           6: ("pre-upgrade", "str"), 7: ("post-upgrade", "str")}
PACKAGE = {1: ("info", PKGINFO), 2: ("paths", ("array", DIR)), 3: ("scripts", SCRIPTS),
           4: ("triggers", ("array", "str")), 5: ("replaces-priority", "int")}


class Adb:
    """One ADB block payload: offsets in tag words count from its first byte."""

    def __init__(self, payload: bytes) -> None:
        if len(payload) < 16:
            raise ApkFormatError("ADB block shorter than 16 bytes")
        self.b = payload
        compat, ver, _reserved, self.root = struct.unpack_from("<BBHI", payload, 0)
        if compat != 0:
            raise ApkFormatError("ADB compat version %d" % compat)
        self.version = ver

    def _at(self, off: int, size: int, align: int) -> bytes:
        if off % align:
            raise ApkFormatError("value at %d not aligned to %d" % (off, align))
        if off < 8 or off + size > len(self.b):
            raise ApkFormatError("value at %d+%d outside the ADB block" % (off, size))
        return self.b[off:off + size]

    def value(self, word: int, kind):
        t, v = word >> 28, word & 0x0FFFFFFF
        if t == SPECIAL:
            if v != 0:
                raise ApkFormatError("special value %d where data was expected" % v)
            return None
        if kind == "int":
            if t == INT:
                return v
            if t == INT32:
                return struct.unpack("<I", self._at(v, 4, 4))[0]
            if t == INT64:
                return struct.unpack("<Q", self._at(v, 8, 8))[0]
            raise ApkFormatError("type %x where an integer was expected" % t)
        if kind in ("str", "hex"):
            if t == BLOB8:
                n = self._at(v, 1, 1)[0]
                data = self._at(v + 1, n, 1)
            elif t == BLOB16:
                n = struct.unpack("<H", self._at(v, 2, 2))[0]
                data = self._at(v + 2, n, 1)
            elif t == BLOB32:
                n = struct.unpack("<I", self._at(v, 4, 4))[0]
                data = self._at(v + 4, n, 1)
            else:
                raise ApkFormatError("type %x where a blob was expected" % t)
            return data.decode("utf-8") if kind == "str" else data
        if isinstance(kind, tuple):
            if t != ARRAY:
                raise ApkFormatError("type %x where an array was expected" % t)
            return [self.value(w, kind[1]) for w in self._slots(v)]
        if isinstance(kind, dict):
            if t != OBJECT:
                raise ApkFormatError("type %x where an object was expected" % t)
            out = {}
            for i, w in enumerate(self._slots(v), 1):
                if i not in kind:
                    raise ApkFormatError("unknown field %d" % i)
                name, sub = kind[i]
                val = self.value(w, sub)
                if val is not None:
                    out[name] = val
            return out
        raise AssertionError(kind)

    def _slots(self, off: int) -> list:
        n = struct.unpack("<I", self._at(off, 4, 4))[0]
        if n < 1:
            raise ApkFormatError("slot count 0")
        return list(struct.unpack("<%dI" % n, self._at(off, 4 * n, 4))[1:])


def read_apk(blob: bytes) -> dict:
    """{"compressed": bool, "schema": int, "package": the tree as dicts, "adb": payload,
    "data": [(path index, file index, bytes)], "blocks": [(type, size)]}."""
    compressed = blob[:4] == b"ADBd"
    if compressed:
        d = zlib.decompressobj(-15)
        raw = d.decompress(blob[4:]) + d.flush()
        if not d.eof or d.unused_data:
            raise ApkFormatError("deflate stream truncated or followed by junk")
    elif blob[:4] == b"ADB.":
        raw = blob
    else:
        raise ApkFormatError("not an ADB file: %r" % blob[:4])
    if raw[:4] != b"ADB.":
        raise ApkFormatError("no ADB. magic after decompression")
    schema = struct.unpack_from("<I", raw, 4)[0]
    pos, blocks, adb, data = 8, [], None, []
    while pos < len(raw):
        if pos % 8:
            raise ApkFormatError("block at %d not 8-aligned" % pos)
        word = struct.unpack_from("<I", raw, pos)[0]
        btype, size = word >> 30, word & 0x3FFFFFFF
        if btype == 3:
            raise ApkFormatError("extended block header where none is needed")
        if size < 4 or pos + size > len(raw):
            raise ApkFormatError("block size %d at %d" % (size, pos))
        payload = raw[pos + 4:pos + size]
        padded = size + (-size % 8)
        if raw[pos + size:pos + padded] != b"\0" * (padded - size):
            raise ApkFormatError("non-zero block padding at %d" % pos)
        blocks.append((btype, size))
        if not blocks[:-1] and btype != 0:
            raise ApkFormatError("first block is not ADB")
        if btype == 0:
            if adb is not None:
                raise ApkFormatError("two ADB blocks")
            adb = payload
        elif btype == 2:
            i, j = struct.unpack_from("<II", payload, 0)
            data.append((i, j, payload[8:]))
        elif btype != 1:
            raise ApkFormatError("block type %d" % btype)
        pos += padded
    if pos != len(raw) or adb is None:
        raise ApkFormatError("trailing bytes or no ADB block")
    tree = Adb(adb)
    return {"compressed": compressed, "schema": schema, "adb": adb, "blocks": blocks,
            "package": tree.value(tree.root, PACKAGE), "data": data}


def package_hash(adb: bytes, stored: bytes) -> bytes:
    """What info.hashes must hold: SHA-256 of the ADB payload with the stored hash bytes
    zeroed, truncated to the stored length (apk mkpkg fills it in this way)."""
    at = adb.find(bytes([len(stored)]) + stored)
    if at < 0 or adb.find(bytes([len(stored)]) + stored, at + 1) >= 0:
        raise ApkFormatError("hash blob not found exactly once")
    zeroed = adb[:at + 1] + b"\0" * len(stored) + adb[at + 1 + len(stored):]
    return hashlib.sha256(zeroed).digest()[:len(stored)]


def extract(parsed: dict) -> dict:
    """path ("usr/bin/x") -> (bytes, mode, user, group, mtime) as apk would install it,
    checking that DATA blocks come in path/file order, one per non-empty file, with the
    size and SHA-256 the tree gives; directories -> (None, mode, user, group, None)."""
    out, expect = {}, []
    for i, d in enumerate(parsed["package"].get("paths", []), 1):
        dname = d.get("name", "")
        acl = d["acl"]
        if dname:
            out[dname] = (None, acl["mode"], acl["user"], acl["group"], None)
        for j, f in enumerate(d.get("files", []), 1):
            path = dname + "/" + f["name"] if dname else f["name"]
            if f.get("size", 0):
                expect.append((i, j, path, f))
            else:
                out[path] = (b"", f["acl"]["mode"], f["acl"]["user"], f["acl"]["group"],
                             f["mtime"])
    if [(i, j) for i, j, _ in parsed["data"]] != [(i, j) for i, j, _, _ in expect]:
        raise ApkFormatError("DATA blocks out of order or missing")
    for (_, _, body), (_, _, path, f) in zip(parsed["data"], expect):
        if len(body) != f["size"] or hashlib.sha256(body).digest() != f["hash"]:
            raise ApkFormatError("%s: size or hash does not match its data" % path)
        out[path] = (body, f["acl"]["mode"], f["acl"]["user"], f["acl"]["group"], f["mtime"])
    return out
