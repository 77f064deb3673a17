"""Names of everything the renderer creates: prefixed, stable, inside kernel limits.

Calico names an IP set ``cali40s:`` + a hash of the selector and a chain
``cali-pi-`` + a hash of the policy: the name is a function of the content, so
two nodes (and two runs) agree, and the kernel's limits hold however long the
namespace or selector is. We do the same with base32 of SHA-256, truncated.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

from sekisho.errors import UsageError

IPTABLES_CHAIN_MAX = 28
"""``xt_table`` chain names: 29 bytes with the NUL (XT_EXTENSION_MAXNAMELEN - 1 ... iptables says 28)."""
IPSET_NAME_MAX = 31
"""``IPSET_MAXNAMELEN`` is 32 with the NUL."""
MIN_HASH = 8
"""Shortest hash we accept in a name (40 bits: collisions stay out of reach for one node)."""

ACCEPT_MARK = 0x10000
"""The mark bit a policy rule sets when it allows a packet (Calico's accept mark)."""
PASS_MARK = 0x20000
"""The mark bit a policy rule sets when it passes a packet to the next tier (Calico's pass mark)."""

_PREFIX_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,11}$")


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can start every name we create, else raise :class:`UsageError`."""
    if not _PREFIX_RE.match(prefix):
        raise UsageError(
            f"prefix {prefix!r}: expected 1 to 12 letters, digits or '_', starting with a letter"
        )
    return prefix


@functools.lru_cache(maxsize=1 << 16)
def stable_hash(content: str, length: int) -> str:
    """``length`` lowercase base32 characters of SHA-256 of ``content``."""
    digest = base64.b32encode(hashlib.sha256(content.encode()).digest()).decode().lower()
    return digest.rstrip("=")[:length]


def fit(prefix: str, tag: str, ident: str, limit: int) -> str:
    """``prefix-tag-ident`` if it fits in ``limit`` characters, else ``ident`` replaced by its hash."""
    name = f"{prefix}-{tag}-{ident}"
    if len(name) <= limit:
        return name
    room = limit - len(prefix) - len(tag) - 2
    if room < MIN_HASH:
        raise UsageError(f"prefix {prefix!r} is too long for names of at most {limit} characters")
    return f"{prefix}-{tag}-{stable_hash(ident, room)}"


def hashed(prefix: str, tag: str, content: str, limit: int, cap: int = 20) -> str:
    """``prefix-tag-HASH`` where HASH fills the room left (at most ``cap`` characters)."""
    room = min(cap, limit - len(prefix) - len(tag) - 2)
    if room < MIN_HASH:
        raise UsageError(f"prefix {prefix!r} is too long for names of at most {limit} characters")
    return f"{prefix}-{tag}-{stable_hash(content, room)}"


def policy_chain(prefix: str, policy_key: str, direction: str) -> str:
    """Chain of one policy's rules for one direction: ``P-pi-HASH`` (ingress) / ``P-po-HASH``."""
    tag = "pi" if direction == "ingress" else "po"
    return hashed(prefix, tag, policy_key, IPTABLES_CHAIN_MAX)


def endpoint_chain(prefix: str, iface: str, direction: str) -> str:
    """``P-tw-IFACE`` (to the workload: its ingress) or ``P-fw-IFACE`` (from it: its egress)."""
    tag = "tw" if direction == "ingress" else "fw"
    return fit(prefix, tag, iface, IPTABLES_CHAIN_MAX)


def host_chain(prefix: str, ident: str, chain: str) -> str:
    """A host endpoint's chain (Felix's ``cali-fh-IFACE``, ``cali-th-``, ``cali-fhfw-``,
    ``cali-thfw-``): ``P-fh-IDENT`` and so on, ``ident`` its interface (or its name)."""
    return fit(prefix, chain, ident, IPTABLES_CHAIN_MAX)


def set_name(prefix: str, set_key: str, family: int = 4) -> str:
    """The IP set (ipset or nft named set) for a canonical set identity and IP family
    (Felix's ``cali40s``/``cali60s``: one set per family; ours differ by their hash)."""
    content = set_key if family == 4 else f"inet6 {set_key}"
    return hashed(prefix, "s", content, IPSET_NAME_MAX)


def temp_set_name(name: str, prefix: str) -> str:
    """The scratch set ``ipset restore`` fills and swaps into ``name`` (same length, ``-t-``)."""
    return prefix + "-t-" + name[len(prefix) + 3 :]


CHURN_TAGS = ("s", "pi", "po", "tw", "fw")
"""The tags of what endpoint churn makes come and go on a node: sets, policy chains and
workload endpoint chains (the appliers may keep these a while when unreferenced; host
endpoint and base chains are never kept)."""


def churned(prefix: str, name: str) -> bool:
    """Whether ``name`` is a set, a policy chain or a workload endpoint chain (:data:`CHURN_TAGS`)."""
    tag = name[len(prefix) + 1 :].split("-", 1)[0]
    return (
        name.startswith(prefix + "-")
        and tag in CHURN_TAGS
        and not name.endswith(("-dispatch", "-map"))
    )


def top_chain(prefix: str, hook: str) -> str:
    """Our chain that the builtin ``hook`` chain jumps to first."""
    return f"{prefix}-{hook}"


def dispatch_chain(prefix: str, direction: str) -> str:
    """The chain that picks a local endpoint's chain by interface."""
    return f"{prefix}-{'tw' if direction == 'ingress' else 'fw'}-dispatch"


def dispatch_map(prefix: str, direction: str) -> str:
    """The verdict map (nftables) from a local endpoint's interface to its chain."""
    return f"{prefix}-{'tw' if direction == 'ingress' else 'fw'}-map"


COMMENT_MAX = 120
"""Longest comment we write: nftables keeps at most 128 bytes, iptables 256."""


def comment_text(comment: str) -> str:
    """A rule's comment as written by both backends: double quotes made single, at most
    :data:`COMMENT_MAX` characters (cut with ``...``)."""
    text = comment.replace('"', "'")
    if len(text.encode()) <= COMMENT_MAX:
        return text
    cut = text.encode()[: COMMENT_MAX - 3].decode(errors="ignore")
    return cut + "..."


# ------------------------------------------------------------------------- log prefixes

XT_LOG_PREFIX_MAX = 29
"""iptables ``LOG --log-prefix``: "Prefix log messages with the specified prefix; up
to 29 letters long" (iptables-extensions(8); the kernel's ``prefix[30]`` with the NUL)."""
NFT_LOG_PREFIX_MAX = 127
"""nftables ``log prefix``: ``NF_LOG_PREFIXLEN`` is 128 bytes with the NUL."""

NFLOG_GROUP_MAX = 65535
"""nfnetlink_log groups are 16 bits (``--nflog-group``, nft's ``log group``)."""


def check_log_group(group: int | None) -> int | None:
    """``group`` if Log rules can write to it (None: the kernel log), else :class:`UsageError`."""
    if group is not None and not 0 <= group <= NFLOG_GROUP_MAX:
        raise UsageError(f"log group {group}: expected 0 to {NFLOG_GROUP_MAX}")
    return group


_LOG_WORD = re.compile(r"^[A-Za-z0-9._/:-]+$")
"""Characters a policy name keeps in a log prefix: nothing the ``iptables-save``/``nft``
quoting or a log reader would change (no quote, ``$``, backslash or ``~``)."""
_LOG_RE = re.compile(
    r"^(?P<prefix>[A-Za-z][A-Za-z0-9_]*) "
    r"(?:policy (?P<label>\S.*?) (?P<direction>ingress|egress) rule (?P<index>\d+): "
    r"|(?P<short>\S+)/(?P<d>[ie])(?P<i>\d+) )$"
)


def _log_words(label: str) -> bool:
    """``label`` is words of :data:`_LOG_WORD` joined by single spaces."""
    return all(_LOG_WORD.match(w) for w in label.split(" "))


def _log_head(label: str) -> str:
    """The part of ``label`` a shortened prefix starts with: its policy's own name (the
    last word, after the last ``/``: kind and namespace left to the hash)."""
    name = label.rsplit(" ", 1)[-1].rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._:-]", "_", name)


def log_prefix(prefix: str, key: str, label: str, direction: str, index: int, limit: int) -> str:
    """The log prefix of rule ``index`` of ``direction`` of the policy of ``key`` (shown as
    ``label``), at most ``limit`` characters and unique per policy rule of a ruleset:

    - ``P policy LABEL DIRECTION rule N: `` when it fits (nftables: 127 characters);
    - else ``P LABEL/iN `` (``/eN`` for egress) when ``LABEL`` is one word that fits
      (a Kubernetes NetworkPolicy ``ns/name``);
    - else ``P HEAD~HASH/iN ``: ``HEAD`` the start of the policy's own name (kind and
      namespace dropped), ``HASH`` of ``key`` (what keeps two policies apart).

    :func:`parse_log_prefix` reads it back; the rule's comment carries the full name."""
    full = f"{prefix} policy {label} {direction} rule {index}: "
    if _log_words(label) and len(full) <= limit:
        return full
    tail = f"/{'i' if direction == 'ingress' else 'e'}{index} "
    room = limit - len(prefix) - 1 - len(tail)
    if _LOG_WORD.match(label) and len(label) <= room:
        return f"{prefix} {label}{tail}"
    if room < MIN_HASH:
        raise UsageError(f"prefix {prefix!r} is too long for log prefixes of {limit} characters")
    keep = room - MIN_HASH - 1
    head = _log_head(label)[:keep]
    if not head:
        return f"{prefix} {stable_hash(key, room)}{tail}"
    return f"{prefix} {head}~{stable_hash(key, MIN_HASH)}{tail}"


def parse_log_prefix(text: str) -> tuple[str, str, str, int] | None:
    """``(prefix, name, direction, index)`` of a log prefix made by :func:`log_prefix`
    (``name`` the policy's label, or its shortened form ``HEAD~HASH``), else None."""
    m = _LOG_RE.match(text)
    if m is None:
        return None
    if m["label"] is not None:
        return m["prefix"], m["label"], m["direction"], int(m["index"])
    return m["prefix"], m["short"], "ingress" if m["d"] == "i" else "egress", int(m["i"])


_RULE_LOG_RE = re.compile(r"""(?:--log-prefix|--nflog-prefix|log prefix) (["'])(.*?)\1""")


def rule_log_prefix(line: str) -> str | None:
    """The log prefix of one rule as rendered or read back (``iptables-save`` quotes it
    with ``'`` or ``"``, ``nft list`` with ``"``), else None."""
    m = _RULE_LOG_RE.search(line)
    return None if m is None else m[2]


def log_prefix_names(text: str, label: str) -> bool:
    """Whether the log prefix ``text`` names a rule of the policy shown as ``label``
    (whole, or cut and hashed: then its head must be the start of ``label``)."""
    parsed = parse_log_prefix(text)
    if parsed is None:
        return False
    name = parsed[1]
    if "~" not in name:
        return name == label
    return _log_head(label).startswith(name.rpartition("~")[0])
