"""sekisho: Kubernetes NetworkPolicy the way Calico enforces it.

Understand (validate, trace, matrix), compile (render iptables/ipset or nftables
for one node), enforce (the node agent) and prove (a lab of network namespaces).
The command line is ``sekisho``; this package keeps its import light so the
command starts fast: submodules are imported where they are used.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
