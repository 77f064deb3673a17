"""The only code that touches the kernel: apply atomically, read back, repair, clean up.

Public surface:

- :class:`CommandRunner` (protocol) and :class:`SubprocessRunner` (production,
  ``netns=`` runs every command through ``ip netns exec NAME``);
  :class:`LibnftRunner` (the agent's: the same, but ``nft`` commands run
  in-process through libnftables on one long-lived netlink socket);
- :class:`IptablesApplier` (iptables-restore + ipset) and :class:`NftApplier`
  (``nft -f``), each with ``apply(desired)``, ``read_back()``, ``drift(desired)``,
  ``resync(desired)`` and ``cleanup()``;
- :class:`ApplyResult`: what one call changed.

:mod:`sekisho.dataplane.netns` is the one way into a network namespace (a
command through ``ip netns exec``, a thread through ``setns(2)``), used by the
runners here and by the lab.

Both appliers touch only objects whose names start with their prefix.
"""

from __future__ import annotations

from sekisho.dataplane.iptables import ApplyResult, IptablesApplier
from sekisho.dataplane.nftables import NftApplier
from sekisho.dataplane.runner import CommandRunner, LibnftRunner, SubprocessRunner

__all__ = [
    "ApplyResult",
    "CommandRunner",
    "IptablesApplier",
    "LibnftRunner",
    "NftApplier",
    "SubprocessRunner",
]
