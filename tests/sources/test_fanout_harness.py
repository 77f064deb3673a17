"""bench/bench_fanout.py's harness on a tiny cluster: watcher processes list, receive every change.

Keeps the fan-out bench from rotting: two watcher processes (the agent's
``EtcdSource``, no dataplane) on a loopback etcd, a few changes written raw and
through the validating store; every watcher must list every key and see every
change, once received and once decoded. No timing is asserted.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sekisho.lab.etcd import LocalEtcd
from sekisho.sources.etcd import EtcdClient
from sekisho.sources.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_fanout
import generator


@pytest.fixture(scope="module")
def etcd() -> Iterator[LocalEtcd]:
    with LocalEtcd() as e:
        yield e


@pytest.mark.parametrize("validated", [False, True], ids=["raw", "validated"])
def test_every_watcher_lists_and_receives_every_change(etcd: LocalEtcd, validated: bool) -> None:
    prefix = f"/fanout-{'v' if validated else 'r'}/"
    config = etcd.config(prefix=prefix)
    objs = generator.generate(20, seed=1)
    client = EtcdClient(config)
    Store(client).apply_objects(objs)
    keys = len(client.range_prefix(prefix)[1])
    changes = bench_fanout.Changes(client, prefix, objs, validated)
    assert etcd.proc is not None
    sampler = bench_fanout.RssSampler(etcd.proc.pid)
    try:
        run = bench_fanout.run(etcd, sampler, changes, 2, 4, 0.05, prefix=prefix, pause=0.3)
    finally:
        sampler.close()
        client.close()
    assert run.keys == [keys, keys]
    assert run.missing == 0
    assert len(run.every) == 2 * 4 and len(run.last) == len(run.decoded) == 4
    assert all(x > 0 for x in run.every + run.decoded)
    assert run.watch_bytes > sum(changes.bytes)  # every change came through the raw stream too
    assert run.rss_peak > 0 and run.watcher_rss > 0
