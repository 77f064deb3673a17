"""Addresses for what the manifests leave out: node IPs, node pod CIDRs, pod IPs.

Every choice is deterministic, stable across runs and independent of file order:

- a node with no InternalIP gets the first free host address of :data:`NODE_NETWORK`
  (192.168.110.0/24, the seed's node network), nodes taken in name order;
- a node with no podCIDR gets the first free /24 (IPv4; /120 for IPv6) of the
  cluster CIDR (default 10.244.0.0/16) not overlapping any other node's, in name order;
- a pod with no IP gets one from each of its node's podCIDRs (one per family: a
  dual-stack node's pods get an IPv4 and an IPv6 address, the first podCIDR's
  first), or from the cluster CIDR when it has no node: the address at a hash of ``namespace/name`` inside the range, or
  the next free one after it, skipping the network and broadcast addresses, IPv4
  addresses ending in ``.0``, and addresses already taken. Hashing (rather than
  counting) keeps a pod's address when other pods come and go.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

from sekisho.model.checks import IPAddress, IPNetwork

NODE_NETWORK = ipaddress.IPv4Network("192.168.110.0/24")
"""Where nodes without an InternalIP get one."""


class PoolExhausted(Exception):
    """No free address or block is left in a range (reported as a problem by the caller)."""


def first_free_host(network: IPNetwork, taken: set[int]) -> IPAddress:
    for host in network.hosts():
        if int(host) not in taken and not _ends_in_zero(host):
            taken.add(int(host))
            return host
    raise PoolExhausted(f"no free address left in {network}")


def first_free_block(cluster: IPNetwork, taken: Iterable[IPNetwork]) -> IPNetwork:
    used = list(taken)
    new_prefix = max(cluster.prefixlen, 24 if cluster.version == 4 else 120)
    for block in cluster.subnets(new_prefix=new_prefix):
        if not any(block.overlaps(u) for u in used):
            return block
    raise PoolExhausted(f"no free /{new_prefix} left in {cluster}")


def _ends_in_zero(ip: IPAddress) -> bool:
    return ip.version == 4 and int(ip) & 0xFF == 0


def hashed_ip(key: str, pool: IPNetwork, taken: set[int]) -> IPAddress:
    """A free address of ``pool`` chosen by hashing ``key``; marks it taken."""
    for candidate in candidates(key, pool):
        if candidate in taken:
            continue
        taken.add(candidate)
        return pool.network_address.__class__(candidate)
    raise PoolExhausted(f"no free address left in {pool}")


def candidates(key: str, pool: IPNetwork) -> Iterator[int]:
    """The addresses :func:`hashed_ip` tries for ``key``, in order (as integers): from the
    hash of ``key`` on, around the pool, without the ones no pod can have. A pod gets the
    first one not taken, so which pods it passed over is known (``model.patch`` checks
    that a change moves no other pod's address)."""
    import hashlib  # on use: loading OpenSSL is start-up time most commands never need

    size = pool.num_addresses
    base = int(pool.network_address)
    start = int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") % size
    has_broadcast = pool.version == 4 and pool.prefixlen < 31
    for step in range(size):
        offset = (start + step) % size
        if has_broadcast and (offset == 0 or offset == size - 1):
            continue
        if pool.version == 6 and offset == 0:
            continue
        candidate = base + offset
        if pool.version == 4 and candidate & 0xFF == 0:
            continue
        yield candidate
