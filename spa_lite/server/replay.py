"""Replay defence: an O(1) set of packet digests plus a tiny append-only digest file.

Key. The digest is SHA-256 of the *canonical* SPA text: the payload base64-decoded (stopping
at '=', ignoring the spare bits of the last character) and encoded again without padding.
Every re-encoding that decodes to the same bytes (added '=', altered spare bits) maps to the
same key, so fwknopd's "append ==" replay bypass does not work here. Lines in fwknopd's own
``digest.cache`` format (SHA-256 of the raw payload) are kept in a second set and checked
against the raw payload's digest, so a user who points DIGEST_FILE at fwknopd's file keeps
its protection; that second lookup costs nothing when no such lines were loaded.
(A re-added ``U2FsdGVkX1`` prefix never gets this far: such payloads are rejected first.)

File. One line per accepted packet, ``<digest> <expiry-epoch>``. An entry is useless once
the packet's timestamp is outside the age window (the age check rejects it anyway), so
expired lines are dropped when the file is compacted (atomically: temp file + rename), which
keeps it bounded. A torn last line after a power cut is skipped with a count.

State loss. Routers keep /var in RAM, so after a reboot the file is gone and the set is
empty, while a packet captured just before may still be inside the age window. So when the
state is lost, packets stamped earlier than ``anchor + MAX_SPA_PACKET_AGE`` are refused (the
replay floor). Any packet accepted before the anchor was stamped below ``anchor + age`` (it
passed the age check), whatever the client's clock skew, so none of them can be replayed.

The anchor (REPLAY_GUARD_AFTER_STATE_LOSS):
- ``boot`` (default): a missing file with no sign that a daemon ran during this boot is a
  reboot or a first start, and the anchor is the boot. A first start on a machine up longer
  than the age window grants the first knock; right after a reboot knocks wait out the rest
  of the window. A file that is missing although a daemon ran during this boot (the
  ``<file>.boot`` marker names this boot) was deleted under us: the anchor is this start.
- ``start``: always this start (every start without the file waits one window).
- An empty file is treated as a missing one (an installer may create it empty).
- A file that exists but is damaged (a torn or unreadable line, over the size limit) lost
  entries at some unknown moment: the anchor is this start, in both modes.
The anchor is kept as a CLOCK_BOOTTIME reading and turned into wall-clock time at each
check, so it stays right when a router without an RTC starts with a wrong clock and NTP
corrects it later. The loss is recorded in the new file's header (boot id and anchor), so a
daemon restart inside the window keeps the original anchor. Not covered: a truncation that
ends exactly on a line boundary (indistinguishable from fewer grants), and a server clock
that ran ahead before the reboot.

Failures. The file is opened without following symlinks, must be a regular file, and is
read up to MAX_DIGEST_FILE_SIZE. A record that cannot be written (full or read-only
filesystem) makes ``add`` return False and the policy refuses that knock: a grant whose
record is lost could be replayed after a restart. ``status_change`` reports the failing
and recovered states once each, for the log.
"""

import binascii
import errno
import hashlib
import os
import stat
import time

from spa_lite.core.limits import MAX_DIGEST_FILE_SIZE
from spa_lite.errors import UsageError
from spa_lite.privfile import write_private

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
COMPACT_MIN_LINES = 1024   # adds between prunes, at least (the file holds at most ~2x live)
HEADER = "# spa-lite digest cache: <sha256-b64 of canonical SPA data> <expiry>\n"


_INDEX = {c: i for i, c in enumerate(ALPHABET)}
# Spare low bits of the last character for a group of 2 or 3 characters.
_SPARE_MASK = {2: 0x30, 3: 0x3C}


_PREFIX_LEN = 10   # the decoder re-adds "U2FsdGVkX1" in front before decoding
_PREFIX_BITS = 0x3C   # the last 4 bits of "Salted__", high in the first wire character


def canonical_text(payload: bytes) -> bytes:
    """The payload cut at the first '=', the salted-prefix bits of its first character set
    as an encoder sets them, and the spare bits of its last character cleared.

    Spare bits are counted as the decoder sees the data, i.e. after the 10-character salted
    prefix is put back. The first character carries 4 bits of "Salted__" that the decrypter
    never looks at (the core refuses other values, this is the second lock). Those are the
    only edits that leave the decrypted bytes unchanged, so every such re-encoding maps to
    one text; a packet from a real encoder is unchanged.
    """
    cut = payload.find(b"=")
    if cut >= 0:
        payload = payload[:cut]
    if payload:
        i = _INDEX.get(payload[0])
        if i is not None and i & _PREFIX_BITS != _PREFIX_BITS:
            payload = ALPHABET[i | _PREFIX_BITS:(i | _PREFIX_BITS) + 1] + payload[1:]
    mask = _SPARE_MASK.get((len(payload) + _PREFIX_LEN) % 4)
    if mask is not None and payload:
        i = _INDEX.get(payload[-1])
        if i is not None and i & ~mask:
            payload = payload[:-1] + ALPHABET[i & mask:(i & mask) + 1]
    return payload


def system_uptime() -> float:
    """Seconds since boot, including suspend (CLOCK_BOOTTIME); immune to wall-clock jumps."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def system_boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return "unknown"


def _b64_sha256(data: bytes) -> str:
    return binascii.b2a_base64(hashlib.sha256(data).digest(), newline=False).rstrip(b"=").decode()


def replay_key(payload: bytes) -> str:
    """43-character base64 SHA-256 of the canonical text (fwknopd's digest format)."""
    return _b64_sha256(canonical_text(payload))


def fwknopd_key(payload: bytes) -> str:
    """fwknopd's own key: SHA-256 of the payload exactly as received."""
    return _b64_sha256(payload)


class DigestFileError(UsageError):
    """The digest file cannot be used at all (a directory, a symlink): one line, exit 2."""


def _open_nofollow(path: str, flags: int, what: str = "DIGEST_FILE") -> int:
    """os.open that refuses symlinks and anything but a regular file, with one clear line."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DigestFileError("%s %s is a symbolic link; refusing to follow it (point %s "
                                  "at the real file)" % (what, path, what))
        if exc.errno == errno.EISDIR:
            raise DigestFileError("%s %s is a directory, not a file" % (what, path))
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise DigestFileError("%s %s is %s, not a regular file" % (
            what, path, "a directory" if stat.S_ISDIR(mode) else "a special file"))
    return fd


def check_path(path) -> None:
    """Refuse (DigestFileError) a digest path that can never work (a symlink, a directory),
    before the firewall is touched; a missing file is fine."""
    if not path:
        return
    try:
        os.close(_open_nofollow(path, os.O_RDONLY))
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise DigestFileError("DIGEST_FILE %s: cannot read: %s" % (path, exc.strerror))


def _read_bounded(fd: int, limit: int) -> bytes:
    chunks, total = [], 0
    while total <= limit:
        b = os.read(fd, min(65536, limit + 1 - total))
        if not b:
            break
        chunks.append(b)
        total += len(b)
    return b"".join(chunks)


class ReplayCache:
    """Seen-digest set with optional persistence. ``now`` is always passed in.

    ``readonly`` (``--test``): read the file and apply the same floor, never write."""

    def __init__(self, path=None, max_age: int = 120, aging: bool = True,
                 guard_state_loss="boot", uptime=system_uptime, boot_id=system_boot_id,
                 readonly: bool = False) -> None:
        self.path = path
        self.max_age = max_age
        self.aging = aging
        self.guard_state_loss = guard_state_loss
        self.readonly = readonly
        self.entries = {}        # digest -> expiry epoch (0: never)
        self.foreign = {}        # fwknopd digest.cache entries: raw-payload digest -> expiry
        self.state_lost = False  # apply the floor
        self.loss_reason = ""    # why, for the log and the refusal reason
        self.anchor = 0.0        # CLOCK_BOOTTIME reading the floor counts from
        self.uptime = uptime
        self.boot_id = boot_id
        self.skipped_lines = 0   # torn or foreign lines ignored at load
        self.file_lines = 0
        self.write_errors = 0
        self.failing = None      # text of the last write error while writes fail
        self._reported = None    # the failing state last reported by status_change
        self._compact_at = COMPACT_MIN_LINES   # adds before the next prune/compaction
        self._adds = 0

    # -- persistence
    def _lose(self, reason: str, anchor: float) -> None:
        if self.guard_state_loss and self.aging:
            # two losses (a recorded one, then damage): the later anchor is the safer floor
            self.anchor = max(self.anchor, anchor) if self.state_lost else anchor
            self.state_lost = True
            self.loss_reason = reason

    def _marker_says_this_boot(self) -> bool:
        try:
            fd = _open_nofollow(self.path + ".boot", os.O_RDONLY, "DIGEST_FILE marker")
        except (OSError, DigestFileError):
            return False
        try:
            return _read_bounded(fd, 128).strip() == self.boot_id().encode()
        finally:
            os.close(fd)

    def _write_marker(self) -> None:
        """Record that a daemon ran during this boot (see State loss)."""
        if self.readonly or self._marker_says_this_boot():
            return
        try:
            write_private(self.path + ".boot", self.boot_id() + "\n")
        except UsageError:
            pass

    def _lose_all(self, how: str) -> None:
        """No records at all (file missing or empty): a reboot or first start unless the
        marker shows a daemon ran during this boot (then the records were removed under us)."""
        if self.guard_state_loss == "start":
            self._lose("digest file %s" % how, self.uptime())
        elif self._marker_says_this_boot():
            self._lose("digest file %s since the last start" % ("deleted" if how == "missing"
                                                              else "emptied"), self.uptime())
        else:
            self._lose("digest file %s: first start or reboot" % how, 0.0)

    def load(self, now: int) -> None:
        """Read the digest file; set the state-loss floor if it is missing or damaged.
        Raises DigestFileError if the path cannot be a digest file at all."""
        if not self.path:
            return
        try:
            fd = _open_nofollow(self.path, os.O_RDONLY)
        except FileNotFoundError:
            if not self.readonly:
                try:   # /var/run is tmpfs on a router: the directory is gone after a reboot
                    os.makedirs(os.path.dirname(self.path) or ".", 0o700, exist_ok=True)
                except OSError:
                    pass   # the rewrite below then reports a write error
            self._lose_all("missing")
            self._rewrite(now)
            self._write_marker()
            return
        except OSError as exc:
            raise DigestFileError("DIGEST_FILE %s: cannot read: %s" % (self.path, exc.strerror))
        try:
            data = _read_bounded(fd, MAX_DIGEST_FILE_SIZE)
        except OSError as exc:
            raise DigestFileError("DIGEST_FILE %s: cannot read: %s" % (self.path, exc.strerror))
        finally:
            os.close(fd)
        too_big = len(data) > MAX_DIGEST_FILE_SIZE
        if too_big:
            data = data[:data.rfind(b"\n", 0, MAX_DIGEST_FILE_SIZE) + 1]
        for line in data.split(b"\n"):
            self._load_line(line.strip(), now)
        if not data:   # as good as missing: pre-created (touch), or emptied (see marker)
            self._lose_all("empty")
            self._rewrite(now)
            self._write_marker()
            return
        damage = ("larger than %d bytes" % MAX_DIGEST_FILE_SIZE if too_big else
                  "%d unreadable or torn lines" % self.skipped_lines if self.skipped_lines else
                  "last line torn" if not data.endswith(b"\n") else None)
        if damage:
            self._lose("digest file damaged (%s)" % damage, self.uptime())
        if damage or self._expired_count(now):
            self._rewrite(now)
        else:
            self.file_lines = len(self.entries)
        self._write_marker()
    def _load_line(self, line: bytes, now: int) -> None:
        if line.startswith(b"#state-lost "):   # lost during this boot: keep the floor
            parts = line.split()
            if self.guard_state_loss and self.aging and len(parts) == 3 and \
                    parts[1] == self.boot_id().encode():
                try:
                    anchor = float(parts[2])
                except ValueError:
                    self.skipped_lines += 1
                    return
                self._lose("state lost earlier during this boot", anchor)
            return
        if not line or line.startswith(b"#"):
            return
        parts = line.split()
        try:
            digest = parts[0].decode("ascii")
            if len(digest) != 43 or binascii.a2b_base64(digest + "=") is None:
                raise ValueError
            table = self.entries
            if len(parts) == 2:            # ours: digest expiry
                expiry = int(parts[1])
            elif len(parts) == 7:          # fwknopd: digest proto src sport dst dport created
                expiry = int(parts[6]) + self.max_age + 1
                table = self.foreign
            else:
                raise ValueError
        except (ValueError, IndexError, UnicodeError, binascii.Error):
            self.skipped_lines += 1
            return
        if not self.aging:
            expiry = 0
        if expiry == 0 or expiry > now:
            table[digest] = max(expiry, table.get(digest, 0)) if expiry else 0

    def _expired_count(self, now: int) -> int:
        return sum(1 for e in self.entries.values() if e and e <= now)

    def _rewrite(self, now: int) -> bool:
        """Atomically replace the file with the live entries only (False: not written)."""
        self._prune(now)
        if not self.path or self.readonly:
            return True
        lines = [HEADER]
        if self.state_lost:
            lines.append("#state-lost %s %.3f\n" % (self.boot_id(), self.anchor))
        lines += ["%s %d\n" % (d, e) for d, e in self.entries.items()]
        lines += ["%s 0 0.0.0.0 0 0.0.0.0 0 %d\n" % (d, (e - self.max_age - 1) if e else 0)
                  for d, e in self.foreign.items()]   # keep fwknopd's entries in its format
        try:
            write_private(self.path, "".join(lines))
        except UsageError as exc:    # privfile: "<path>: cannot write: <why>"
            return self._write_failed(OSError(errno.EIO, str(exc).rsplit(": ", 1)[-1]))
        self.file_lines = len(self.entries)
        self.failing = None
        return True

    def _write_failed(self, exc: OSError) -> bool:
        self.write_errors += 1
        self.failing = exc.strerror or str(exc)
        return False

    def status_change(self):
        """(level, text) once when writes start failing and once when they work again."""
        if self.failing == self._reported or (self.failing and self._reported):
            return None
        self._reported = self.failing
        if self.failing:
            return ("error", "digest file %s cannot be written (%s): knocks are refused until "
                             "it can, since a grant whose record is lost could be replayed "
                             "after a restart" % (self.path, self.failing))
        return ("info", "digest file %s is writable again: knocks are accepted" % self.path)

    # -- the hot path
    def empty(self) -> bool:
        """Nothing to look up: the caller may skip computing the digest (the SHA-256 of every
        junk packet is a fifth of its cost, and the set is empty most of the time)."""
        return not self.entries and not self.foreign

    def seen_payload(self, payload: bytes, digest: str, now: int) -> bool:
        """Replay check for a payload whose canonical digest is ``digest``."""
        if self.seen(digest, now):
            return True
        if self.foreign:
            exp = self.foreign.get(fwknopd_key(payload))
            return exp is not None and (not exp or exp > now)
        return False

    def seen(self, digest: str, now: int) -> bool:
        exp = self.entries.get(digest)
        if exp is None:
            return False
        if exp and exp <= now:
            del self.entries[digest]
            return False
        return True

    def floor(self, now: float):
        """Packets stamped before this are refused (None: no state was lost)."""
        if not self.state_lost:
            return None
        return int(now - (self.uptime() - self.anchor)) + self.max_age

    def below_floor(self, timestamp: int, now: float) -> bool:
        f = self.floor(now)
        return f is not None and timestamp < f

    def add(self, digest: str, packet_time: int, now: int, persist: bool = True) -> bool:
        """Remember an accepted (decrypted) packet until it can no longer pass the age check.
        False: the record could not be persisted (the caller must refuse the knock)."""
        expiry = max(packet_time, now) + self.max_age + 1 if self.aging else 0
        self.entries[digest] = expiry
        self._adds += 1
        persist = persist and bool(self.path) and not self.readonly
        if self._adds >= self._compact_at:
            # Prune expired entries (memory and file) once per batch of adds: O(1) amortised.
            self._adds = 0
            ok = self._rewrite(now) if persist else (self._prune(now) or True)
            self._compact_at = max(COMPACT_MIN_LINES, len(self.entries))
            if persist and ok:
                return True   # the rewrite already holds this entry
        if not persist:
            return True
        line = ("%s %d\n" % (digest, expiry)).encode()
        try:
            fd = _open_nofollow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                if os.write(fd, line) != len(line):
                    raise OSError(errno.ENOSPC, "short write")
            finally:
                os.close(fd)
        except DigestFileError as exc:
            return self._write_failed(OSError(errno.EINVAL, str(exc)))
        except OSError as exc:
            return self._write_failed(exc)
        self.file_lines += 1
        self.failing = None
        return True

    def _prune(self, now: int) -> None:
        self.entries = {d: e for d, e in self.entries.items() if not e or e > now}
        self.foreign = {d: e for d, e in self.foreign.items() if not e or e > now}

