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


@pytest.mark.parametrize("family", [4, 6])
def test_sorted_members_and_their_moves_equal_member_texts(family: int) -> None:
    """``sorted_members`` spells what ``member_texts`` spells (``address . port`` for a
    pair), and a spelling moved by members that came and went (``move_sorted``, as
    endpoint churn moves a set's spelling) equals the members spelt again: or the move
    is refused (a network of the family, pairs and addresses mixed)."""
    from sekisho.render.compile import move_sorted, sorted_members

    rng = random.Random(family)
    moved = refused = 0
    for _ in range(300):
        shape = rng.choice(["addresses", "pairs", "mixed"])

        def member(shape: str = shape) -> Member:
            v4 = ipaddress.IPv4Address(0x0AF40000 + rng.randrange(64))
            v6 = ipaddress.IPv6Address(0x20010DB8 << 96 | rng.randrange(64))
            pool: list[Member] = {
                "addresses": [v4, v6],
                "pairs": [(v4, rng.choice([80, 443])), (v6, 80)],
                "mixed": [
                    v4,
                    v6,
                    (v4, 80),
                    (v6, 80),
                    ipaddress.ip_network("10.9.0.0/16"),
                    ipaddress.ip_network("2001:db8:1::/48"),
                ],
            }[shape]
            return rng.choice(pool)

        members: dict[Member, int] = {member(): 1 for _ in range(rng.randrange(0, 12))}
        spelt = sorted_members(members, family)
        expected = [t if p is None else f"{t} . {p}" for t, p in member_texts(members, family)]
        if spelt is None:
            continue
        keys, texts = spelt
        assert texts == expected
        moves: list[tuple[Member, bool]] = []
        for _ in range(rng.randrange(1, 8)):
            m = member()
            came = m not in members
            if came:
                members[m] = 1
            else:
                del members[m]
            moves.append((m, came))
        again = sorted_members(members, family)
        if move_sorted(keys, texts, moves, family):
            moved += 1
            assert again is not None and (keys, texts) == again
        else:
            refused += 1
    assert moved > 50 and refused > 0
