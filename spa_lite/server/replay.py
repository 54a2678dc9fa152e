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
file is missing at start, packets stamped earlier than ``anchor + MAX_SPA_PACKET_AGE`` are
refused. With the default anchor ``start`` (the moment this daemon started), any packet
accepted before the restart arrived before the anchor and so carried a timestamp below
``anchor + age``, whatever the client's clock skew: the rule is airtight for every restart,
reboot or not. The price is that knocks are refused for one age window after a start that
found no file (including the very first start; the daemon logs it). The anchor ``boot``
(REPLAY_GUARD_AFTER_STATE_LOSS boot) uses the last boot instead: no wait on a first install
long after boot, but a file deleted without a reboot is not covered. The anchor is kept as
a CLOCK_BOOTTIME reading and turned into wall-clock time at each check, so it stays right
when a router without an RTC starts with a wrong clock and NTP corrects it later. The loss
is recorded in the new file's header (boot id and anchor), so a daemon restart inside the
window keeps the original anchor.
"""

import binascii
import hashlib
import os
import time

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
COMPACT_MIN_LINES = 1024   # adds between prunes, at least (the file holds at most ~2x live)


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


class ReplayCache:
    """Seen-digest set with optional persistence. ``now`` is always passed in."""

    def __init__(self, path=None, max_age: int = 120, aging: bool = True,
                 guard_state_loss="start", uptime=system_uptime, boot_id=system_boot_id) -> None:
        self.path = path
        self.max_age = max_age
        self.aging = aging
        self.guard_state_loss = guard_state_loss
        self.entries = {}        # digest -> expiry epoch (0: never)
        self.foreign = {}        # fwknopd digest.cache entries: raw-payload digest -> expiry
        self.state_lost = False  # digest file missing at start: apply the floor
        self.anchor = 0.0        # CLOCK_BOOTTIME reading the floor counts from
        self.uptime = uptime
        self.boot_id = boot_id
        self.skipped_lines = 0   # torn or foreign lines ignored at load
        self.file_lines = 0
        self.write_errors = 0
        self._compact_at = COMPACT_MIN_LINES   # adds before the next prune/compaction
        self._adds = 0

    # -- persistence
    def load(self, now: int) -> None:
        """Read the digest file; set the state-loss floor if it is missing."""
        if not self.path:
            return
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            try:   # /var/run is tmpfs on a router: the directory is gone after a reboot too
                os.makedirs(os.path.dirname(self.path) or ".", 0o700, exist_ok=True)
            except OSError:
                pass   # the rewrite below then counts a write error
            if self.guard_state_loss and self.aging:
                self.state_lost = True
                self.anchor = self.uptime() if self.guard_state_loss == "start" else 0.0
            self._rewrite(now)
            return
        for line in data.split(b"\n"):
            self._load_line(line.strip(), now)
        if data and not data.endswith(b"\n") or self.skipped_lines or self._expired_count(now):
            self._rewrite(now)
        else:
            self.file_lines = len(self.entries)

    def _load_line(self, line: bytes, now: int) -> None:
        if line.startswith(b"#state-lost "):   # lost during this boot: keep the floor
            parts = line.split()
            if self.guard_state_loss and self.aging and len(parts) == 3 and \
                    parts[1] == self.boot_id().encode():
                try:
                    self.anchor = float(parts[2])
                    self.state_lost = True
                except ValueError:
                    self.skipped_lines += 1
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

    def _rewrite(self, now: int) -> None:
        """Atomically replace the file with the live entries only."""
        self._prune(now)
        if not self.path:
            return
        tmp = "%s.tmp.%d" % (self.path, os.getpid())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write("# spa-lite digest cache: <sha256-b64 of canonical SPA data> <expiry>\n")
                if self.state_lost:
                    fh.write("#state-lost %s %.3f\n" % (self.boot_id(), self.anchor))
                for d, e in self.entries.items():
                    fh.write("%s %d\n" % (d, e))
                for d, e in self.foreign.items():   # keep fwknopd's entries in its format
                    fh.write("%s 0 0.0.0.0 0 0.0.0.0 0 %d\n" % (d, (e - self.max_age - 1) if e else 0))
            os.replace(tmp, self.path)
            self.file_lines = len(self.entries)
        except OSError:
            self.write_errors += 1
            try:
                os.unlink(tmp)
            except OSError:
                pass

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

    def add(self, digest: str, packet_time: int, now: int, persist: bool = True) -> None:
        """Remember an accepted (decrypted) packet until it can no longer pass the age check."""
        expiry = max(packet_time, now) + self.max_age + 1 if self.aging else 0
        self.entries[digest] = expiry
        self._adds += 1
        if self._adds >= self._compact_at:
            # Prune expired entries (memory and file) once per batch of adds: O(1) amortised.
            self._adds = 0
            self._rewrite(now) if (persist and self.path) else self._prune(now)
            self._compact_at = max(COMPACT_MIN_LINES, len(self.entries))
            if persist and self.path:
                return   # the rewrite already holds this entry
        if not (persist and self.path):
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, ("%s %d\n" % (digest, expiry)).encode())
            finally:
                os.close(fd)
            self.file_lines += 1
        except OSError:
            self.write_errors += 1

    def _prune(self, now: int) -> None:
        self.entries = {d: e for d, e in self.entries.items() if not e or e > now}
        self.foreign = {d: e for d, e in self.foreign.items() if not e or e > now}
