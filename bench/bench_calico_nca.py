"""Calico v3 policies: ``sekisho matrix`` against NCA (network-config-analyzer), cell by cell and in time.

    .venv/bin/python bench/bench_calico_nca.py                      # 100, 1,000 and 5,000 pods
    .venv/bin/python bench/bench_calico_nca.py --sizes 100,1000     # parts of it
    .venv/bin/python bench/bench_calico_nca.py --agree 100,1000     # sizes compared cell by cell

The clusters are ``generator.py --shape calico`` (the first shape's pods, Calico
GlobalNetworkPolicies and NetworkPolicies with orders, Allow and Deny, selector
expressions, namespace selectors, nets, numbered/ranged/named ports; no tiers,
which NCA does not read), one YAML file given to both tools.

Time: whole commands as child processes, ``sekisho matrix FILE -o summary`` (every
declared port and ICMP) against ``nca --connectivity DIR --resource_list DIR``
(its default txt output: the connectivity map), median of ``--repeat`` runs (NCA
at 5,000 pods once); the baseline is NCA, measured in the same run.

Agreement: NCA's per-pair output (``-o txt_no_fw_rules``: lines ``src => dst :
connections``, where connections are ``All connections``, sets like
``{protocols:TCP,dst_ports:8000-8100,50051}``, or ``All but {...}``; a pair may
have several lines, which add up) is parsed and compared with ``allowed`` of
``sekisho matrix -o json`` for every TCP and UDP probe sekisho makes (each
declared container port) and every ordered pair of distinct pods. ICMP is not
compared (NCA's output names no ICMP type here). Every differing cell is counted;
the first ones are printed with sekisho's trace of the flow.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_matrix as bm  # noqa: E402  (bench scripts load siblings by path)

_LINE = re.compile(r"^(?P<src>\S+) => (?P<dst>\S+) : (?P<conn>.+)$")
_SET = re.compile(r"\{([^{}]*)\}")
_KEY = re.compile(r"(?:^|,)\s*(protocols|dst_ports|src_ports|[a-z_]+):")

Conn = tuple[bool, list[tuple[frozenset[str], list[tuple[int, int]] | None]]]
"""(negated, sets): ``All but`` sets when negated; ``All connections`` is (True, [])."""


def _sets(text: str) -> list[tuple[frozenset[str], list[tuple[int, int]] | None]]:
    out: list[tuple[frozenset[str], list[tuple[int, int]] | None]] = []
    for m in _SET.finditer(text):
        inner = m.group(1)
        keys = list(_KEY.finditer(inner))
        fields: dict[str, str] = {}
        for i, k in enumerate(keys):
            end = keys[i + 1].start() if i + 1 < len(keys) else len(inner)
            fields[k.group(1)] = inner[k.end() : end].strip()
        unknown = set(fields) - {"protocols", "dst_ports"}
        if unknown or "protocols" not in fields:
            raise ValueError(f"NCA connection set not understood: {m.group(0)!r}")
        protos = frozenset(p.strip() for p in fields["protocols"].split(","))
        ports = None
        if "dst_ports" in fields:
            ports = []
            for part in fields["dst_ports"].split(","):
                lo, _, hi = part.strip().partition("-")
                ports.append((int(lo), int(hi or lo)))
        out.append((protos, ports))
    if not out:
        raise ValueError(f"NCA connections not understood: {text!r}")
    return out


def parse_pairs(text: str) -> dict[tuple[str, str], list[Conn]]:
    """``{(src, dst): [conn, ...]}`` for pod-to-pod lines; several lines of a pair add up."""
    pairs: dict[tuple[str, str], list[Conn]] = {}
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m or not m["src"].endswith("[Pod]") or not m["dst"].endswith("[Pod]"):
            continue
        key = (m["src"][: -len("[Pod]")], m["dst"][: -len("[Pod]")])
        conn = m["conn"].strip()
        if conn == "All connections":
            c: Conn = (True, [])
        elif conn == "No connections":
            c = (False, [])
        elif conn.startswith("All but "):
            c = (True, _sets(conn[len("All but ") :]))
        else:
            c = (False, _sets(conn))
        pairs.setdefault(key, []).append(c)
    return pairs


def allows(conns: list[Conn], port: int, protocol: str) -> bool:
    def hit(sets: list[tuple[frozenset[str], list[tuple[int, int]] | None]]) -> bool:
        return any(
            protocol in protos and (ranges is None or any(lo <= port <= hi for lo, hi in ranges))
            for protos, ranges in sets
        )

    return any((not hit(sets)) if negated else hit(sets) for negated, sets in conns)


def agreement(directory: Path, show: int = 12, probes: tuple[str, ...] = ()) -> list[str]:
    import numpy as np

    extra = [w for p in probes for w in ("--probe", p)]
    sk = json.loads(
        bm.run([*bm.SEKISHO, "matrix", str(directory), "-o", "json", *extra], capture=True).stdout
    )
    nca = parse_pairs(bm.run(bm.nca_argv(directory, "-o", "txt_no_fw_rules"), capture=True).stdout)
    pods: list[str] = sk["pods"]
    index = {p: i for i, p in enumerate(pods)}
    unknown = {p for pair in nca for p in pair if p not in index}
    if unknown:
        return [f"NCA names pods sekisho does not: {sorted(unknown)[:5]}"]
    n = len(pods)
    off = ~np.eye(n, dtype=bool)
    compared = mine_n = theirs_n = 0
    differ: list[tuple[str, str, str, int, bool]] = []
    for probe in sk["probes"]:
        port, proto = probe["port"], probe["protocol"]
        if proto not in ("TCP", "UDP") or port is None:
            continue
        mine = np.array(probe["allowed"], dtype=bool) & off
        theirs = np.zeros((n, n), dtype=bool)
        for (src, dst), conns in nca.items():
            if src != dst and allows(conns, port, proto):
                theirs[index[src], index[dst]] = True
        compared += n * (n - 1)
        mine_n += int(mine.sum())
        theirs_n += int(theirs.sum())
        for i, j in np.argwhere(mine != theirs).tolist():
            differ.append((pods[i], pods[j], proto, port, bool(mine[i, j])))
    lines = [
        f"  {compared:,} cells (ordered pairs of distinct pods x TCP/UDP probes); allowed: "
        f"sekisho {mine_n:,}, nca {theirs_n:,}; cells that differ: {len(differ):,}"
    ]
    kinds: dict[str, int] = {}
    for _src, _dst, proto, port, mine_ok in differ:
        k = f"{proto}/{port} {'sekisho allows, nca denies' if mine_ok else 'nca allows, sekisho denies'}"
        kinds[k] = kinds.get(k, 0) + 1
    lines += [f"    {v:,} x {k}" for k, v in sorted(kinds.items())]
    for src, dst, proto, port, mine_ok in differ[:show]:
        lines.append(f"  {src} -> {dst} {proto}/{port}: sekisho {mine_ok}, nca {not mine_ok}")
        trace = subprocess.run(
            [
                *bm.SEKISHO,
                "trace",
                str(directory),
                "--from",
                src,
                "--to",
                dst,
                "--port",
                f"{port}",
                "--protocol",
                proto.lower(),
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        lines += [f"      {t}" for t in trace.splitlines() if "by " in t or "verdict" in t][:4]
    return lines


SEED = HERE.parent / "examples" / "seed" / "cluster.yaml"
FEATURE_PROBES = ("80/TCP", "443/TCP", "53/UDP")


def _pol(name: str, spec: dict[str, object], namespace: str | None = "dev") -> dict[str, object]:
    kind = "NetworkPolicy" if namespace else "GlobalNetworkPolicy"
    meta: dict[str, object] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta, "spec": spec}


_RED = {"selector": "app == 'red'", "types": ["Ingress"]}
FEATURES: dict[str, list[dict[str, object]]] = {
    "order: a Deny before an Allow": [
        _pol("a", {**_RED, "order": 200, "ingress": [{"action": "Allow"}]}),
        _pol(
            "d",
            {
                **_RED,
                "order": 100,
                "ingress": [{"action": "Deny", "source": {"selector": "app == 'blue'"}}],
            },
        ),
    ],
    "no order comes last": [
        _pol("a", {**_RED, "ingress": [{"action": "Allow"}]}),
        _pol("d", {**_RED, "order": 5, "ingress": [{"action": "Deny", "protocol": "UDP"}]}),
    ],
    "GlobalNetworkPolicy, namespaceSelector, ports and ranges": [
        _pol(
            "g",
            {
                "selector": "has(app)",
                "types": ["Ingress"],
                "ingress": [
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {"namespaceSelector": "project == 'kube-system'"},
                        "destination": {"ports": [80, "400:500"]},
                    },
                    {"action": "Deny", "protocol": "UDP", "destination": {"ports": [53]}},
                ],
            },
            None,
        )
    ],
    "notSelector, notPorts, notProtocol": [
        _pol(
            "n",
            {
                **_RED,
                "ingress": [
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {"notSelector": "app == 'green'"},
                        "destination": {"notPorts": [443]},
                    },
                    {"action": "Allow", "notProtocol": "TCP"},
                ],
            },
        )
    ],
    "egress with nets and notNets (outside the pod network)": [
        _pol(
            "e",
            {
                "selector": "app == 'blue'",
                "types": ["Egress"],
                "egress": [
                    {"action": "Allow", "destination": {"nets": ["203.0.113.0/24"]}},
                    {"action": "Deny", "destination": {"notNets": ["10.244.0.0/16"]}},
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "destination": {"selector": "app == 'red'"},
                    },
                ],
            },
        )
    ],
    "nets naming pod IPs (Calico matches them)": [
        _pol(
            "p",
            {
                **_RED,
                "ingress": [{"action": "Allow", "source": {"nets": ["10.244.3.0/24"]}}],
            },
        )
    ],
    "Pass in the default tier (then the profile allows)": [
        _pol("p", {**_RED, "order": 1, "ingress": [{"action": "Pass", "protocol": "TCP"}]}),
        _pol("d", {**_RED, "order": 2, "ingress": [{"action": "Deny"}]}),
    ],
    "Log, then Deny": [
        _pol(
            "l",
            {
                **_RED,
                "ingress": [
                    {"action": "Log", "protocol": "TCP"},
                    {"action": "Deny", "protocol": "TCP", "source": {"selector": "app == 'blue'"}},
                    {"action": "Allow"},
                ],
            },
        )
    ],
    "Calico's own labels (projectcalico.org/namespace, /name)": [
        _pol(
            "c",
            {
                "selector": "projectcalico.org/namespace == 'prod'",
                "types": ["Ingress"],
                "ingress": [
                    {
                        "action": "Allow",
                        "source": {"namespaceSelector": "projectcalico.org/name == 'prod'"},
                    }
                ],
            },
            None,
        )
    ],
    "a Tier (NCA reads none)": [
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "Tier",
            "metadata": {"name": "platform"},
            "spec": {"order": 100},
        },
        _pol(
            "platform.d",
            {**_RED, "tier": "platform", "ingress": [{"action": "Deny", "protocol": "TCP"}]},
        ),
        _pol("a", {**_RED, "ingress": [{"action": "Allow"}]}),
    ],
}
"""Small Calico programs on the seed's 7 pods, one feature each: where the two readings
part, it shows on a cluster small enough to read."""


def features() -> list[str]:
    import yaml

    out = []
    for title, objs in FEATURES.items():
        with tempfile.TemporaryDirectory(prefix="sekisho-calico-feature-") as tmp:
            d = Path(tmp)
            text = SEED.read_text() + "\n---\n" + yaml.safe_dump_all(objs, sort_keys=False)
            (d / "cluster.yaml").write_text(text)
            try:
                lines = agreement(d, show=4, probes=FEATURE_PROBES)
            except SystemExit as e:  # a tool refused the input
                lines = [f"  refused: {str(e).splitlines()[-1][:200]}"]
        out.append(f"{title}:")
        out += lines
    return out


def timed(argv: list[str], repeat: int) -> tuple[float, float, int]:
    """(median wall seconds, median CPU seconds of the child, max peak KB).

    CPU time (user + system, from ``wait4``) is reported beside wall time: on a
    machine shared with other work, wall time measures the neighbours too."""
    import os
    import statistics
    import time

    walls, cpus, peaks = [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - start)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(argv)} failed")
        cpus.append(usage.ru_utime + usage.ru_stime)
        peaks.append(usage.ru_maxrss)
    return statistics.median(walls), statistics.median(cpus), max(peaks)


def write_cluster(d: Path, pods: int) -> str:
    argv = [sys.executable, str(HERE / "generator.py"), "--pods", str(pods), "--shape", "calico"]
    argv += ["--seed", "0", "--one-file", "--out", str(d)]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", default="100,1000,5000", help="pod counts to time")
    ap.add_argument("--agree", default="100,1000", help="pod counts to compare cell by cell")
    ap.add_argument("--repeat", type=int, default=3, help="runs per command (median)")
    ap.add_argument("--features", action="store_true", help="only: the one-feature cases")
    args = ap.parse_args()
    if args.features:
        bm.ensure_nca()
        print("\n".join(features()))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    agree = {int(s) for s in args.agree.split(",") if s}
    bm.ensure_nca()
    bm.compile_sekisho()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sekisho-calico-nca-") as tmp:
        every = sorted(set(sizes) | agree)
        for n in every:
            print(f"{n} pods: {write_cluster(Path(tmp) / f'c{n}', n)}", flush=True)
        # Times first: a child's peak RSS from wait4 counts what this process held at fork.
        for n in sizes:
            d = Path(tmp) / f"c{n}"
            sk = timed(
                [*bm.SEKISHO, "matrix", str(d / "cluster.yaml"), "-o", "summary"], args.repeat
            )
            nca = timed(bm.nca_argv(d), 1 if n >= 5000 else args.repeat)
            rows.append((n, sk, nca))
            print(
                f"  {n} pods: sekisho -o summary {sk[0]:.2f} s wall / {sk[1]:.2f} s CPU, "
                f"nca {nca[0]:.2f} s wall / {nca[1]:.2f} s CPU",
                flush=True,
            )
        for n in sorted(agree):
            print(f"agreement at {n} pods:", flush=True)
            print("\n".join(agreement(Path(tmp) / f"c{n}")), flush=True)
    print()
    print(
        "| pods | sekisho wall / CPU (s) | nca wall / CPU (s) | nca / sekisho wall | "
        "**nca / sekisho CPU** | peak MB sekisho / nca |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for n, sk, nca in rows:
        print(
            f"| {n:,} | {sk[0]:.2f} / {sk[1]:.2f} | {nca[0]:.2f} / {nca[1]:.2f} | "
            f"{nca[0] / sk[0]:.1f}x | **{nca[1] / sk[1]:.1f}x** | {sk[2] // 1024} / {nca[2] // 1024} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
