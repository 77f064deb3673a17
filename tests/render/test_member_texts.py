"""The fast paths of ``member_texts`` (plain addresses, named-port pairs) against its
general path, over random mixes of addresses, pairs and networks of both families."""

from __future__ import annotations

import ipaddress
import random

import pytest

from sekisho.render.compile import Member, member_texts


@pytest.mark.parametrize("shape", ["pairs", "addresses", "mixed", "pairs-and-nets"])
def test_fast_paths_equal_the_general_path(shape: str) -> None:
    rng = random.Random(shape)
    for _ in range(150):
        members: dict[Member, int] = {}
        for _ in range(rng.randrange(0, 30)):
            v4 = ipaddress.IPv4Address(rng.randrange(2**32))
            v6 = ipaddress.IPv6Address(rng.randrange(2**128))
            choices: list[Member] = {
                "pairs": [(v4, rng.randrange(1, 100)), (v6, rng.randrange(1, 100))],
                "addresses": [v4, v6],
                "mixed": [
                    v4,
                    v6,
                    (v4, 5),
                    (v6, 7),
                    ipaddress.ip_network(f"10.{rng.randrange(4)}.0.0/16"),
                    ipaddress.ip_network("2001:db8::/32"),
                ],
                "pairs-and-nets": [
                    (v4, 5),
                    (v6, 6),
                    ipaddress.ip_network("2001:db8::/32"),
                    ipaddress.ip_network("10.0.0.0/8"),
                ],
            }[shape]
            members[rng.choice(choices)] = 1
        for family in (4, 6):
            # a list takes the general path (sort by member_sort_key, networks disjoint)
            assert member_texts(members, family) == member_texts(list(members), family)
