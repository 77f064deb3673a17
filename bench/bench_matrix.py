"""Analysis speed: ``sekisho matrix`` against NCA (network-config-analyzer) on generated clusters.

    .venv/bin/python bench/bench_matrix.py            # 100, 1,000, 5,000 pods + 10,000 pods / 1,000 policies
    .venv/bin/python bench/bench_matrix.py --quick    # 100 and 1,000 pods only
    .venv/bin/python bench/bench_matrix.py --full-json  # also the JSON CLI where its output is gigabytes
    .venv/bin/python bench/bench_matrix.py --e2e      # only: the upstream e2e cases through NCA

Every figure is a whole command run as a child process (interpreter start-up,
imports, parsing the input, analysis, output), timed with a monotonic clock; the
median of ``--repeat`` runs is shown, with the child's peak RSS from ``wait4``.
The baseline (NCA) is measured in the same run on the same files. sekisho's
bytecode is written first (``compileall``), as ``pip install`` does for NCA.

Commands:

* headline: ``sekisho matrix FILE -o summary >/dev/null`` (every declared port
  and ICMP): the compact connectivity map (allowed connections between groups
  of pods per probe, with totals), the counterpart of what NCA prints, against
* ``nca --connectivity DIR --resource_list DIR`` (default txt output: the
  connectivity map as minimized firewall rules), from ``bench/.env-nca``, a
  separate virtualenv this script creates (``pip install network-config-analyzer``;
  never a project dependency). The ratio nca / summary is the goal's figure.
* extra: ``sekisho matrix FILE -o json >/dev/null``, the documented pod-by-pod
  JSON, i.e. 3 tables x probes x pods^2 booleans: ~150 MB at 1,000 pods, ~4 GB
  at 5,000, so at 5,000 pods and more it runs only with ``--full-json``.
* extra: sekisho analysis, a child Python that loads and runs ``compute_matrix``
  for every port with every probe's pod-by-pod ``allowed`` table materialized
  (numpy, n x n) but not serialized.

Agreement: on the 100-pod cluster (and the 1,000-pod one unless ``--quick``)
NCA's per-pair output (``-o txt_no_fw_rules``: ``src => dst : connections``) is
parsed and compared, for every TCP/UDP probe and every ordered pair of distinct
pods, with ``allowed`` from ``sekisho matrix -o json``; the script prints the
number of cells compared, allowed counts on both sides, and any mismatch. The
summary's own totals are checked against the JSON's allowed counts.

10,000 pods with 1,000 policies, one probe (8080/TCP): the whole command
``sekisho matrix FILE --probe 8080/TCP -o summary`` and the analysis with the
full 10,000 x 10,000 ``allowed`` table materialized, from YAML and from JSON.

``--e2e`` runs every case of ``tests/e2e_cases.py`` (the upstream e2e suite,
transcribed by hand) through NCA and compares each non-self TCP/UDP/SCTP cell
with the transcribed expectation: a third opinion, independent of sekisho.
NCA never matches an ipBlock against pod IPs (Calico and upstream conformance
do), so the cases whose ipBlocks name pod IPs are expected to differ there.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import generator  # noqa: E402  (bench scripts load siblings by path)

VENV_BIN = Path(sys.executable).parent
SEKISHO = (
    [str(VENV_BIN / "sekisho")]
    if (VENV_BIN / "sekisho").exists()
    else [sys.executable, "-m", "sekisho"]
)
NCA_ENV = HERE / ".env-nca"
NCA = NCA_ENV / "bin" / "nca"

# Load, compute every probe, materialize every pod-level allowed table; no output.
ANALYSIS = """
import sys
from sekisho.model import load_cluster
from sekisho.semantics import compute_matrix, default_probes
cluster = load_cluster(sys.argv[1:2])
probes = default_probes(cluster) if len(sys.argv) < 3 else [(int(sys.argv[2]), sys.argv[3])]
m = compute_matrix(cluster, probes)
cells = sum(int(p.allowed.sum()) for p in m.probes)
print(len(m.pods), len(m.probes), cells)
"""


@dataclass
class Run:
    seconds: float
    peak_kb: int
    returncode: int
    stdout: str


def run(argv: Sequence[str], *, capture: bool = False, cwd: Path | None = None) -> Run:
    """Run a command; wall time and the child's own peak RSS (``wait4``)."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            stdout=out if capture else subprocess.DEVNULL,
            stderr=err,
            cwd=cwd,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode() if capture else ""
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{tail}")
        return Run(elapsed, usage.ru_maxrss, proc.returncode, text)


def timed(argv: Sequence[str], repeat: int, *, cwd: Path | None = None) -> tuple[float, int, int]:
    """(median seconds, max peak KB, runs)."""
    runs = [run(argv, cwd=cwd) for _ in range(repeat)]
    return statistics.median(r.seconds for r in runs), max(r.peak_kb for r in runs), len(runs)


def write_cluster(d: Path, pods: int, fmt: str, policies: int | None = None) -> int:
    """Generate a cluster into ``d`` as one file in a child process; its number of policies.

    In a child so that this process stays small: a child's peak RSS from ``wait4``
    counts the memory it shared with this process between fork and exec.
    """
    argv = [sys.executable, str(HERE / "generator.py"), "--pods", str(pods), "--replicas", "5"]
    argv += ["--seed", "0", "--format", fmt, "--one-file", "--out", str(d)]
    if policies is not None:
        argv += ["--policies", str(policies)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    found = re.search(r"(\d+) NetworkPolicy", out)
    return int(found[1]) if found else 0


def compile_sekisho() -> None:
    """Write sekisho's bytecode, as ``pip install`` does for NCA (and for a wheel of sekisho).

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile
    every module on every run (~40 ms of each command), which NCA never pays.
    """
    import importlib.util

    spec = importlib.util.find_spec("sekisho")
    if spec is None or not spec.submodule_search_locations:
        return
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for where in spec.submodule_search_locations:
        subprocess.run([sys.executable, "-m", "compileall", "-q", where], check=True, env=env)


def ensure_nca() -> Path:
    if NCA.exists():
        return NCA
    print(f"creating {NCA_ENV} and installing network-config-analyzer ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(NCA_ENV)], check=True)
    subprocess.run(
        [str(NCA_ENV / "bin" / "pip"), "install", "-q", "network-config-analyzer"], check=True
    )
    return NCA


def nca_argv(directory: Path, *extra: str) -> list[str]:
    return [str(NCA), "--connectivity", str(directory), "--resource_list", str(directory), *extra]


# --- agreement -------------------------------------------------------------------

_LINE = re.compile(r"^(?P<src>\S+) => (?P<dst>\S+) : (?P<conn>.+)$")
_CONN = re.compile(
    r"\{protocols:(?P<protos>[A-Z]+(?:, ?[A-Z]+)*)(?:,dst_ports:(?P<ports>[0-9,\-]+))?\}"
)


def _ports(spec: str | None) -> list[tuple[int, int]] | None:
    if spec is None:
        return None
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.append((int(lo), int(hi or lo)))
    return out


def parse_nca_pairs(text: str) -> dict[tuple[str, str], object]:
    """``{(src, dst): "all" | [(protocols, port ranges or None), ...]}`` for pod-to-pod lines."""
    pairs: dict[tuple[str, str], object] = {}
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m or not m["src"].endswith("[Pod]") or not m["dst"].endswith("[Pod]"):
            continue
        src, dst = m["src"][: -len("[Pod]")], m["dst"][: -len("[Pod]")]
        conn = m["conn"].strip()
        if conn == "All connections":
            pairs[(src, dst)] = "all"
            continue
        sets = [
            (frozenset(p.strip() for p in c["protos"].split(",")), _ports(c["ports"]))
            for c in _CONN.finditer(conn)
        ]
        if not sets:
            raise ValueError(f"cannot parse NCA connections {conn!r}")
        pairs[(src, dst)] = sets
    return pairs


def nca_allows(conn: object, port: int, protocol: str) -> bool:
    if conn == "all":
        return True
    assert isinstance(conn, list)
    for protos, ranges in conn:
        if protocol in protos and (ranges is None or any(lo <= port <= hi for lo, hi in ranges)):
            return True
    return False


def agreement(directory: Path) -> str:
    import numpy as np

    sk = json.loads(run([*SEKISHO, "matrix", str(directory), "-o", "json"], capture=True).stdout)
    nca = parse_nca_pairs(run(nca_argv(directory, "-o", "txt_no_fw_rules"), capture=True).stdout)
    pods: list[str] = sk["pods"]
    index = {p: i for i, p in enumerate(pods)}
    unknown = {p for pair in nca for p in pair if p not in index}
    if unknown:
        return (
            f"agreement on {directory.name}: NCA names pods sekisho does not: {sorted(unknown)[:5]}"
        )
    n = len(pods)
    off_diagonal = ~np.eye(n, dtype=bool)
    compared = sk_allowed = nca_allowed = wrong = 0
    examples: list[str] = []
    for probe in sk["probes"]:
        port, proto = probe["port"], probe["protocol"]
        if proto not in ("TCP", "UDP") or port is None:
            continue  # compare TCP and UDP ports; ICMP has no NCA counterpart here
        mine = np.array(probe["allowed"], dtype=bool) & off_diagonal
        theirs = np.zeros((n, n), dtype=bool)
        for (src, dst), conn in nca.items():
            if src != dst and nca_allows(conn, port, proto):
                theirs[index[src], index[dst]] = True
        compared += n * (n - 1)
        sk_allowed += int(mine.sum())
        nca_allowed += int(theirs.sum())
        diff = np.argwhere(mine != theirs)
        wrong += len(diff)
        for i, j in diff[: max(0, 10 - len(examples))]:
            examples.append(
                f"  {pods[i]} -> {pods[j]} {proto}/{port}: sekisho {bool(mine[i, j])}, nca {bool(theirs[i, j])}"
            )
    summary = run([*SEKISHO, "matrix", str(directory), "-o", "summary"], capture=True).stdout
    totals = {
        m[1]: int(m[2])
        for m in re.finditer(r"^(\S+): (\d+) of \d+ ordered pod pairs allowed", summary, re.M)
    }
    off = int(n * (n - 1))
    for probe in sk["probes"]:
        name = (
            probe["protocol"] if probe["port"] is None else f"{probe['protocol']}/{probe['port']}"
        )
        full = int(np.array(probe["allowed"], dtype=bool).sum()) - n
        if totals.get(name) != full:
            examples.append(f"  summary total {name}: {totals.get(name)} != json {full} of {off}")
    lines = [
        f"agreement on {directory.name}: {compared} cells (ordered pairs of distinct pods x TCP/UDP "
        f"probes); allowed: sekisho {sk_allowed}, nca {nca_allowed}; cells that differ: {wrong}"
    ]
    return "\n".join(lines + examples)


def e2e_against_nca() -> list[str]:
    """Every upstream e2e case (tests/e2e_cases.py) through NCA: a third opinion on the transcription."""
    sys.path.insert(0, str(ROOT / "tests"))
    e2e_cases = importlib.import_module("e2e_cases")

    lines = []
    agree = 0
    with tempfile.TemporaryDirectory(prefix="sekisho-e2e-nca-") as tmp:
        for case in e2e_cases.CASES:
            d = Path(tmp) / case.id
            generator.write(case.objects(), d, one_file=True)
            out = run(nca_argv(d, "-o", "txt_no_fw_rules"), capture=True).stdout
            pairs = parse_nca_pairs(out)
            wrong = []
            for port, proto in case.probes:
                if port is None:
                    continue  # ICMP: NCA's txt output does not separate it
                for src in e2e_cases.PODS:
                    for dst in e2e_cases.PODS:
                        if src == dst:
                            continue
                        theirs = (src, dst) in pairs and nca_allows(pairs[(src, dst)], port, proto)
                        if theirs != case.allowed((port, proto), src, dst):
                            wrong.append(f"{src}->{dst} {proto}/{port} nca={theirs}")
            if wrong:
                lines.append(f"  {case.id}: {len(wrong)} cells differ, e.g. {', '.join(wrong[:3])}")
            else:
                agree += 1
    return [
        f"e2e cases through NCA: {agree} of {len(e2e_cases.CASES)} agree with the transcription",
        *lines,
    ]


# --- main ------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="sekisho matrix vs NCA on generated clusters")
    ap.add_argument(
        "--quick", action="store_true", help="100 and 1,000 pods only; no 10,000-pod run"
    )
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs per command (median); NCA at 5,000 runs once"
    )
    ap.add_argument(
        "--full-json",
        action="store_true",
        help="also run the JSON CLI at 5,000+ pods (GBs of output)",
    )
    ap.add_argument(
        "--no-nca", action="store_true", help="sekisho only (no baseline, no agreement)"
    )
    ap.add_argument(
        "--sizes",
        metavar="N,N",
        help="pod counts to compare with NCA (default 100,1000,5000; '' for none)",
    )
    ap.add_argument("--no-10k", action="store_true", help="skip the 10,000-pod single-probe run")
    ap.add_argument(
        "--e2e", action="store_true", help="only: run the upstream e2e cases through NCA"
    )
    ap.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it")
    args = ap.parse_args(argv)

    if args.e2e:
        ensure_nca()
        print("\n".join(e2e_against_nca()))
        return 0
    sizes = [100, 1000] if args.quick else [100, 1000, 5000]
    if args.sizes is not None:
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    if not args.no_nca:
        ensure_nca()
    compile_sekisho()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sekisho-bench-"))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, clusters in {base}")
    print(
        "clusters from bench/generator.py (deployments of 5 replicas, ~pods/10 policies, seed 0),\n"
        "one file each (cluster.yaml, or cluster.json as one List); both tools read the same file\n"
    )

    rows = []
    for n in sizes:
        for fmt in ("yaml", "json"):
            d = base / f"pods-{n}-{fmt}"
            n_pol = write_cluster(d, n, fmt)
            f = str(d / f"cluster.{fmt}")
            sk_sum, sk_kb, _ = timed([*SEKISHO, "matrix", f, "-o", "summary"], args.repeat)
            sk_json = None
            if n < 5000 or args.full_json:
                sk_json, _, _ = timed([*SEKISHO, "matrix", f, "-o", "json"], args.repeat)
            sk_an, _, _ = timed([sys.executable, "-c", ANALYSIS, f], args.repeat)
            nca_s = nca_kb = None
            if not args.no_nca:
                nca_s, nca_kb, _ = timed(nca_argv(d), 1 if n >= 5000 else args.repeat, cwd=base)
            rows.append((n, n_pol, fmt, sk_sum, sk_kb, sk_json, sk_an, nca_s, nca_kb))
            print(
                f"  {n} pods ({fmt}): sekisho -o summary {sk_sum:.2f} s, -o json {_fmt(sk_json)} s, "
                f"analysis {sk_an:.2f} s, nca {_fmt(nca_s)} s",
                flush=True,
            )

    print()
    print(
        "| pods | policies | input | sekisho -o summary (s) | nca (s) | **nca / summary** "
        "| peak MB summary / nca | sekisho -o json (s) | nca / json | sekisho analysis (s) "
        "| nca / analysis |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, n_pol, fmt, sk_sum, sk_kb, sk_json, sk_an, nca_s, nca_kb in rows:
        r_sum = f"**{nca_s / sk_sum:.1f}x**" if nca_s else "-"
        r_json = f"{nca_s / sk_json:.1f}x" if nca_s and sk_json else "-"
        r_an = f"{nca_s / sk_an:.1f}x" if nca_s else "-"
        mem = f"{sk_kb // 1024} / {nca_kb // 1024 if nca_kb else '-'}"
        print(
            f"| {n} | {n_pol} | {fmt} | {sk_sum:.2f} | {_fmt(nca_s)} | {r_sum} | {mem} "
            f"| {_fmt(sk_json)} | {r_json} | {sk_an:.2f} | {r_an} |"
        )

    if not (args.quick or args.no_10k):
        print("\n10,000 pods, 1,000 policies, one probe (8080/TCP), full pod-by-pod matrix:")
        for fmt in ("yaml", "json"):
            d = base / f"pods-10000-{fmt}"
            write_cluster(d, 10000, fmt, policies=1000)
            f = str(d / f"cluster.{fmt}")
            cmd = [*SEKISHO, "matrix", f, "--probe", "8080/TCP", "-o", "summary"]
            s, kb, k = timed(cmd, args.repeat)
            print(
                f"  sekisho matrix --probe 8080/TCP -o summary, {fmt}: {s:.2f} s "
                f"(median of {k}), peak RSS {kb // 1024} MB"
            )
            s, kb, k = timed([sys.executable, "-c", ANALYSIS, f, "8080", "TCP"], args.repeat)
            print(
                f"  analysis with the full table, {fmt}: {s:.2f} s (median of {k}), "
                f"peak RSS {kb // 1024} MB"
            )
        if args.full_json:
            d = base / "pods-10000-json"
            s, kb, k = timed([*SEKISHO, "matrix", str(d), "--probe", "8080/TCP", "-o", "json"], 1)
            print(f"  sekisho matrix -o json: {s:.2f} s, peak RSS {kb // 1024} MB")
    # Last: the agreement check parses big JSON here, and a child's peak RSS from wait4
    # counts the memory this process has when it forks.
    if not args.no_nca:
        print()
        for n in [n for n in sizes if n <= (100 if args.quick else 1000)]:
            print(agreement(base / f"pods-{n}-yaml"))

    return 0


if __name__ == "__main__":
    sys.exit(main())
