"""fw4 rulesets for tests, derived from tests/fixtures/fw4/ruleset.nft (rendered by
firewall4 itself): rename the uplink zone, add a second uplink zone, change the uplink
device (PPPoE), and place /usr/share/nftables.d include files where firewall4's
ruleset.uc places them, dropping those for chains the ruleset lacks, as fw4 does."""

import os
import re

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "fw4",
                       "ruleset.nft")


def _word(name: str) -> str:
    return r"(?<![A-Za-z0-9])%s(?![A-Za-z0-9])" % re.escape(name)


def _rename(text: str, old: str, new: str, old_dev: str, new_dev: str) -> str:
    return re.sub(_word(old), new, text).replace('"%s"' % old_dev, '"%s"' % new_dev)


def _add_zone(text: str, like: str, name: str, dev_like: str, dev: str) -> str:
    """A second zone configured as ``like``: its chains, defines and every dispatch,
    NAT and MTU-fix line copied with the new name and device."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\tchain (\S+) \{$", line)
        if m and re.search(_word(like) + "$", m.group(1)):
            j = lines.index("\t}", i)
            block = lines[i:j + 1]
            out += block + [""] + [_rename(l, like, name, dev_like, dev) for l in block]
            i = j + 1
            continue
        out.append(line)
        if not m and not line.startswith("#") and re.search(_word(like), line):
            out.append(_rename(line, like, name, dev_like, dev))
        i += 1
    return "\n".join(out)


def render(includes: str = None, zone: str = "wan", device: str = "eth1",
           second: tuple = None) -> str:
    """The ruleset for uplink ``zone`` on ``device`` (plus ``second`` = (zone, device)
    configured the same way), with the include files under ``includes`` placed."""
    with open(FIXTURE) as fh:
        text = fh.read()
    text = _rename(text, "wan", zone, "eth1", device)
    if second:
        text = _add_zone(text, zone, second[0], device, second[1])
    if includes:
        text = _includes(text, os.path.abspath(includes))
    return text


def _includes(text: str, base: str) -> str:
    lines = text.split("\n")

    def inc(path):
        return '\t\tinclude "%s"' % path

    table_pre = os.path.join(base, "table-pre")
    if os.path.isdir(table_pre):
        at = lines.index('\tinclude "/etc/nftables.d/*.nft"') + 1
        lines[at:at] = [inc(os.path.join(table_pre, f))[1:] for f in sorted(os.listdir(table_pre))]
    chain_pre = os.path.join(base, "chain-pre")
    for chain in sorted(os.listdir(chain_pre)) if os.path.isdir(chain_pre) else ():
        files = [inc(os.path.join(chain_pre, chain, f))
                 for f in sorted(os.listdir(os.path.join(chain_pre, chain)))]
        try:
            at = lines.index("\tchain %s {" % chain) + 1
        except ValueError:
            continue                     # fw4 drops includes for chains it did not render
        if lines[at].lstrip().startswith("type "):
            at += 1
            if chain == "input":
                while not lines[at].strip().startswith('iif "lo"'):
                    at += 1
                at += 1
        lines[at:at] = files
    return "\n".join(lines)
