"""Replay cache: canonical keys, the append-only file, compaction, torn lines, state loss."""

import binascii
import hashlib
import os

from hypothesis import given, settings, strategies as st

from spa_lite.server.replay import ReplayCache, canonical_text, fwknopd_key, replay_key

# A real fwknop 2.6.10 packet and the digest fwknopd itself stored for it (protocol doc 7.2).
FWKNOP_WIRE = (b"/6pgCyiR8L5nmlpQMf2X1g8rnBzmYG4eP5EWdG6o+z5mho0sbXfGIr7vErzGwPWVD7A9qPW2Nm5YT5/hA"
               b"JRo/xM43SDXmlRXkFuBq4oR6Rzz2TO1uty7V27W8DYsXxrQ4ujxI0/HKcwpMLM+9pQwxjxR5ZKAd71wWV1uX"
               b"qSJZcqqhyhMEqT0EnQfOuIShMOKBcUSddxzETmZFQ12KNQCfu2r53pcnASjA")
FWKNOPD_DIGEST = "wshS54J4yRr0Qr1bmQylIraQMOsJzK5Il7gBbPT0Niw"


def test_fwknopd_key_matches_what_fwknopd_stored():
    assert fwknopd_key(FWKNOP_WIRE) == FWKNOPD_DIGEST


def test_real_packets_are_their_own_canonical_text():
    assert canonical_text(FWKNOP_WIRE) == FWKNOP_WIRE
    assert canonical_text(FWKNOP_WIRE[:182]) == FWKNOP_WIRE[:182]


def test_reencodings_share_one_key():
    base = replay_key(FWKNOP_WIRE)
    assert replay_key(FWKNOP_WIRE + b"==") == base
    assert replay_key(FWKNOP_WIRE + b"=") == base
    assert replay_key(FWKNOP_WIRE + b"=AAAA") == base
    # a real change of data is a different key
    assert replay_key(FWKNOP_WIRE[:-2] + b"AA") != base


def test_spare_bits_of_a_non_hmac_packet_are_canonicalised():
    # A non-HMAC packet: the decoder sees "U2FsdGVkX1" + ct; trim ct so that string has a
    # partial last group (2 characters -> 4 spare bits), then flip those bits.
    prefix = b"U2FsdGVkX1"
    ct = FWKNOP_WIRE[:180]                     # (10 + 180) % 4 == 2
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    idx = alphabet.index(ct[-1:]) & 0x30       # what a real encoder would emit
    ct = ct[:-1] + alphabet[idx:idx + 1]
    assert canonical_text(ct) == ct
    for spare in range(1, 16):
        variant = ct[:-1] + alphabet[idx | spare:(idx | spare) + 1]
        assert binascii.a2b_base64(prefix + variant + b"==") == binascii.a2b_base64(prefix + ct + b"==")
        assert replay_key(variant) == replay_key(ct)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=300), st.integers(0, 3))
def test_canonical_text_is_stable_under_padding(raw, pads):
    # wire text exactly as a sender makes it: base64("Salted__" + data) minus 10 characters
    text = binascii.b2a_base64(b"Salted__" + raw, newline=False).rstrip(b"=")[10:]
    assert canonical_text(text) == text
    assert canonical_text(text + b"=" * pads) == text
    assert replay_key(text + b"=" * pads) == replay_key(text)


def test_seen_and_expiry(tmp_path):
    c = ReplayCache(str(tmp_path / "d"), max_age=120)
    c.load(1000)
    assert not c.seen("x" * 43, 1000)
    c.add("x" * 43, packet_time=1000, now=1000)
    assert c.seen("x" * 43, 1100)
    assert not c.seen("x" * 43, 1000 + 122)   # outside the age window: forgotten


def test_file_survives_restart_and_honours_fwknopd_lines(tmp_path):
    path = tmp_path / "digest.cache"
    path.write_text("%s 17 127.0.0.1 40000 0.0.0.0 62201 1000\n" % FWKNOPD_DIGEST)
    os.chmod(path, 0o600)
    c = ReplayCache(str(path), max_age=120)
    c.load(1050)
    assert c.floor(1050) is None               # the file existed: no state loss
    assert c.seen_payload(FWKNOP_WIRE, replay_key(FWKNOP_WIRE), 1050)
    assert not c.seen_payload(FWKNOP_WIRE[:-1] + b"B", replay_key(FWKNOP_WIRE[:-1] + b"B"), 1050)
    d = hashlib.sha256(b"other").hexdigest()[:43]
    c.add(d, 1050, 1050)
    c2 = ReplayCache(str(path), max_age=120)
    c2.load(1060)
    assert c2.seen(d, 1060)
    assert c2.seen_payload(FWKNOP_WIRE, replay_key(FWKNOP_WIRE), 1060)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_torn_last_line_is_tolerated(tmp_path):
    path = tmp_path / "d"
    good = "A" * 43
    path.write_text("%s 5000\n%s 50" % (good, "B" * 20))   # power cut mid-line
    c = ReplayCache(str(path), max_age=120)
    c.load(1000)
    assert c.seen(good, 1000)
    assert c.skipped_lines == 1
    c.add("C" * 43, 1000, 1000)
    lines = path.read_text().splitlines()
    assert all(l.startswith("#") or len(l.split()) == 2 for l in lines), lines
    c3 = ReplayCache(str(path), max_age=120)
    c3.load(1001)
    assert c3.seen("C" * 43, 1001) and c3.skipped_lines == 0


def test_compaction_keeps_the_file_bounded(tmp_path):
    path = tmp_path / "d"
    c = ReplayCache(str(path), max_age=10)
    c.load(0)
    now = 0
    for i in range(5000):
        now = i // 10          # ten packets a second
        c.add(hashlib.sha256(str(i).encode()).hexdigest()[:43], now, now)
    n_lines = len(path.read_text().splitlines())
    live = sum(1 for e in c.entries.values() if e > now)
    assert live <= 120
    assert n_lines <= 1024 + max(1024, live) + 2, n_lines
    assert len(c.entries) <= 1024 + max(1024, live)


def booted_at(boot_wall, boot_id="boot-1"):
    """Fake clocks: the machine booted at wall-clock ``boot_wall``; uptime follows ``now``."""
    state = {"now": boot_wall}
    return state, (lambda: state["now"] - boot_wall), (lambda: boot_id)


def test_reboot_floor_is_boot_plus_age_and_survives_a_daemon_restart(tmp_path):
    path = tmp_path / "gone"
    clock, uptime, boot_id = booted_at(10_000)
    clock["now"] = 10_030                          # daemon starts 30 s after boot
    c = ReplayCache(str(path), max_age=120, uptime=uptime, boot_id=boot_id, guard_state_loss="boot")
    c.load(10_030)
    assert c.floor(10_030) == 10_120
    # a packet captured just before the reboot, even from a client whose clock runs ahead
    assert c.below_floor(9_990 + 100, 10_030)
    assert not c.below_floor(10_120, 10_030)
    # procd respawns us 20 s later: the file exists now, but the loss is remembered
    clock["now"] = 10_050
    c2 = ReplayCache(str(path), max_age=120, uptime=uptime, boot_id=boot_id, guard_state_loss="boot")
    c2.load(10_050)
    assert c2.floor(10_050) == 10_120
    # a later boot with the file still there (kept on flash): no floor
    clock3, uptime3, boot3 = booted_at(20_000, "boot-2")
    clock3["now"] = 20_030
    c3 = ReplayCache(str(path), max_age=120, uptime=uptime3, boot_id=boot3, guard_state_loss="boot")
    c3.load(20_030)
    assert c3.floor(20_030) is None


def test_floor_follows_a_clock_correction_after_boot(tmp_path):
    """A router without RTC boots believing it is 1970; NTP fixes the clock later."""
    up = {"t": 5.0}
    c = ReplayCache(str(tmp_path / "gone"), max_age=120, uptime=lambda: up["t"],
                    boot_id=lambda: "b", guard_state_loss="start")
    c.load(5)                                        # wall clock says 5 s after the epoch
    up["t"] = 60.0                                   # NTP sync: real time is now 1_800_000_000
    # the daemon started 55 s before now (at uptime 5), whatever the clock said then
    assert c.floor(1_800_000_000) == 1_800_000_000 - 55 + 120
    assert c.below_floor(1_800_000_000 - 10, 1_800_000_000)


def test_start_anchor_covers_a_restart_without_reboot(tmp_path):
    """The digest file is lost but the machine did not reboot (uptime one day)."""
    up = {"t": 86400.0}
    c = ReplayCache(str(tmp_path / "lost"), max_age=120, uptime=lambda: up["t"], boot_id=lambda: "b",
                    guard_state_loss="start")
    c.load(1_800_000_000)
    assert c.below_floor(1_800_000_000 - 1, 1_800_000_000)      # captured before the restart
    up["t"] += 121
    assert not c.below_floor(1_800_000_121, 1_800_000_121)      # one window later: fresh knocks


def test_boot_anchor_spares_a_first_install_long_after_boot(tmp_path):
    c = ReplayCache(str(tmp_path / "new"), max_age=120, uptime=lambda: 86400.0,
                    boot_id=lambda: "b", guard_state_loss="boot")
    c.load(1_800_000_000)
    assert not c.below_floor(1_800_000_000, 1_800_000_000)


def test_no_floor_when_aging_is_off_or_guard_disabled(tmp_path):
    a = ReplayCache(str(tmp_path / "a"), max_age=120, aging=False, uptime=lambda: 1.0)
    a.load(1000)
    assert a.floor(1000) is None
    b = ReplayCache(str(tmp_path / "b"), max_age=120, guard_state_loss=False, uptime=lambda: 1.0)
    b.load(1000)
    assert b.floor(1000) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_replay_key_never_raises(payload):
    assert len(replay_key(payload)) == 43
    assert len(fwknopd_key(payload)) == 43


def test_missing_run_directory_is_created_private(tmp_path):
    """/var/run is tmpfs on OpenWrt: after a reboot the digest file's directory is gone too."""
    path = tmp_path / "run" / "spa-lite" / "digest.cache"
    c = ReplayCache(str(path), max_age=120)
    c.load(1000)
    c.add("y" * 43, packet_time=1000, now=1000)
    assert c.write_errors == 0
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    assert "y" * 43 in path.read_text()


def test_empty_file_is_a_missing_one_and_the_marker_tells_a_deletion_from_a_reboot(tmp_path):
    """An installer may create the file empty: first start long after boot, no wait. Once a
    daemon ran during this boot (the .boot marker), losing the records counts from the start."""
    path = tmp_path / "digest.cache"
    path.write_text("")
    c = ReplayCache(str(path), max_age=120, uptime=lambda: 86400.0, boot_id=lambda: "b1")
    c.load(1_800_000_000)
    assert not c.below_floor(1_800_000_000, 1_800_000_000)     # boot anchor: long passed
    assert (tmp_path / "digest.cache.boot").read_text().strip() == "b1"
    for damage in ("", None):                                  # emptied, then deleted
        if damage is None:
            path.unlink()
        else:
            path.write_text(damage)
        c2 = ReplayCache(str(path), max_age=120, uptime=lambda: 86400.0, boot_id=lambda: "b1")
        c2.load(1_800_000_000)
        assert c2.below_floor(1_800_000_000 - 1, 1_800_000_000)
        assert "since the last start" in c2.loss_reason
    # after a reboot (another boot id) the marker no longer counts
    path.unlink()
    c3 = ReplayCache(str(path), max_age=120, uptime=lambda: 86400.0, boot_id=lambda: "b2")
    c3.load(1_800_000_000)
    assert not c3.below_floor(1_800_000_000, 1_800_000_000)
    assert "first start or reboot" in c3.loss_reason


def test_damaged_file_counts_from_this_start_and_a_failed_write_is_reported_once(tmp_path):
    path = tmp_path / "digest.cache"
    path.write_text("# spa-lite digest cache\n%s 5000\nnot a record\n" % ("A" * 43))
    c = ReplayCache(str(path), max_age=120, uptime=lambda: 86400.0, boot_id=lambda: "b")
    c.load(1000)
    assert c.seen("A" * 43, 1000) and "damaged" in c.loss_reason
    assert c.below_floor(1000 + 119, 1000)
    path.unlink()
    path.mkdir()                       # appends now fail (EISDIR): refused, reported once
    assert c.add("B" * 43, 1000, 1000) is False and c.add("C" * 43, 1000, 1000) is False
    change = c.status_change()
    assert change[0] == "error" and "cannot be written" in change[1]
    assert c.status_change() is None
    path.rmdir()
    assert c.add("D" * 43, 1000, 1000) is True
    assert c.status_change()[0] == "info" and c.status_change() is None
