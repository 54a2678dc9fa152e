"""Replay defence: an O(1) set of packet digests plus a tiny append-only digest file.

Key. The digest is SHA-256 of the *canonical* SPA text: the payload base64-decoded (stopping
at '=', ignoring the spare bits of the last character) and encoded again without padding.
Every re-encoding that decodes to the same bytes (added '=', altered spare bits) maps to the
same key, so fwknopd's "append ==" replay bypass does not work here. For an ordinary packet
the canonical text *is* the wire text, so the key equals fwknopd's own digest and the
entries of an fwknopd ``digest.cache`` are honoured when a user points DIGEST_FILE at one.
(A re-added ``U2FsdGVkX1`` prefix never gets this far: such payloads are rejected first.)

File. One line per accepted packet, ``<digest> <expiry-epoch>``. An entry is useless once
the packet's timestamp is outside the age window (the age check rejects it anyway), so
expired lines are dropped when the file is compacted (atomically: temp file + rename), which
keeps it bounded. A torn last line after a power cut is skipped with a count.

State loss. Routers keep /var in RAM, so after a reboot the file is gone and the set is
empty: a packet captured just before the reboot would still be inside the age window. So
when the file is missing at start, the cache sets a *floor*: packets stamped earlier than
``start + MAX_SPA_PACKET_AGE`` are refused. Any packet accepted before the restart arrived
before ``start`` and so carried a timestamp below ``start + age``; that bound holds whatever
the client's clock skew. The cost is that knocks are refused for at most one age window
after a state-losing restart (shorten MAX_SPA_PACKET_AGE on NTP-synced setups, or keep
DIGEST_FILE on persistent storage to avoid it); the daemon logs the floor when it applies.
The floor is written into the new file's header, so a second restart inside the window
(procd respawn) keeps it.
"""

import binascii
import hashlib
import os

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
COMPACT_MIN_LINES = 1024   # never compact files smaller than this many lines


def canonical_text(payload: bytes) -> bytes:
    """The payload's base64 decoded and re-encoded without '=' (see module docstring)."""
    cut = payload.find(b"=")
    if cut >= 0:
        payload = payload[:cut]
    if len(payload) % 4 == 1:   # a dangling character carries no whole byte
        payload = payload[:-1]
    padded = payload + b"=" * (-len(payload) % 4)
    try:
        raw = binascii.a2b_base64(padded)
    except (binascii.Error, ValueError):
        return payload
    return binascii.b2a_base64(raw, newline=False).rstrip(b"=")


def replay_key(payload: bytes) -> str:
    """43-character base64 SHA-256 of the canonical text (fwknopd's digest format)."""
    digest = hashlib.sha256(canonical_text(payload)).digest()
    return binascii.b2a_base64(digest, newline=False).rstrip(b"=").decode()


class ReplayCache:
    """Seen-digest set with optional persistence. ``now`` is always passed in."""

    def __init__(self, path=None, max_age: int = 120, aging: bool = True,
                 guard_state_loss: bool = True) -> None:
        self.path = path
        self.max_age = max_age
        self.aging = aging
        self.guard_state_loss = guard_state_loss
        self.entries = {}        # digest -> expiry epoch (0: never)
        self.floor = None        # refuse packets stamped before this (state loss)
        self.skipped_lines = 0   # torn or foreign lines ignored at load
        self.file_lines = 0
        self.write_errors = 0

    # -- persistence
    def load(self, now: int) -> None:
        """Read the digest file; set the state-loss floor if it is missing."""
        if not self.path:
            return
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            if self.guard_state_loss and self.aging:
                self.floor = now + self.max_age
            self._rewrite(now)
            return
        for line in data.split(b"\n"):
            self._load_line(line.strip(), now)
        if data and not data.endswith(b"\n") or self.skipped_lines or self._expired_count(now):
            self._rewrite(now)
        else:
            self.file_lines = len(self.entries)

    def _load_line(self, line: bytes, now: int) -> None:
        if line.startswith(b"#floor "):   # a state-loss floor still in force
            try:
                floor = int(line.split()[1])
            except (ValueError, IndexError):
                self.skipped_lines += 1
                return
            if floor > now:
                self.floor = max(self.floor or 0, floor)
            return
        if not line or line.startswith(b"#"):
            return
        parts = line.split()
        try:
            digest = parts[0].decode("ascii")
            if len(digest) != 43 or binascii.a2b_base64(digest + "=") is None:
                raise ValueError
            if len(parts) == 2:            # ours: digest expiry
                expiry = int(parts[1])
            elif len(parts) == 7:          # fwknopd: digest proto src sport dst dport created
                expiry = int(parts[6]) + self.max_age if self.aging else 0
            else:
                raise ValueError
        except (ValueError, IndexError, UnicodeError, binascii.Error):
            self.skipped_lines += 1
            return
        if not self.aging:
            expiry = 0
        if expiry == 0 or expiry > now:
            self.entries[digest] = max(expiry, self.entries.get(digest, 0)) if expiry else 0

    def _expired_count(self, now: int) -> int:
        return sum(1 for e in self.entries.values() if e and e <= now)

    def _rewrite(self, now: int) -> None:
        """Atomically replace the file with the live entries only."""
        self.entries = {d: e for d, e in self.entries.items() if not e or e > now}
        if not self.path:
            return
        tmp = "%s.tmp.%d" % (self.path, os.getpid())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write("# spa-lite digest cache: <sha256-b64 of canonical SPA data> <expiry>\n")
                if self.floor is not None and self.floor > now:
                    fh.write("#floor %d\n" % self.floor)
                for d, e in self.entries.items():
                    fh.write("%s %d\n" % (d, e))
            os.replace(tmp, self.path)
            self.file_lines = len(self.entries)
        except OSError:
            self.write_errors += 1
            try:
                os.unlink(tmp)
            except OSError:
                pass

    # -- the hot path
    def seen(self, digest: str, now: int) -> bool:
        exp = self.entries.get(digest)
        if exp is None:
            return False
        if exp and exp <= now:
            del self.entries[digest]
            return False
        return True

    def below_floor(self, timestamp: int) -> bool:
        return self.floor is not None and timestamp < self.floor

    def add(self, digest: str, packet_time: int, now: int, persist: bool = True) -> None:
        """Remember an accepted (decrypted) packet until it can no longer pass the age check."""
        expiry = max(packet_time, now) + self.max_age + 1 if self.aging else 0
        self.entries[digest] = expiry
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
        if self.file_lines > max(COMPACT_MIN_LINES, 2 * len(self.entries)):
            self._rewrite(now)
