"""``sekisho report``: the page's data, and the page in a real headless Chromium (Debian's).

The browser tests load the written file (no network), wait for the script, and
read back the body's ``data-status`` (``ok`` once everything is drawn) and
``data-errors`` (every script error). A screenshot of the seed's report is kept
in ``build/artifacts/`` (or ``$SEKISHO_ARTIFACTS``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sekisho.cli.main import main
from sekisho.cli.report_page import page
from sekisho.model import load_cluster
from sekisho.model.types import NetworkPolicy, Peer, PolicyPort, Rule
from sekisho.semantics.probe import Service
from sekisho.semantics.report import report_data
from semantics.builders import cluster, node, pod, sel

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed"
PART2 = [str(SEED / "cluster.yaml"), str(SEED / "part2")]
ARTIFACTS = Path(os.environ.get("SEKISHO_ARTIFACTS", ROOT / "build" / "artifacts"))


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.geteuid() == 0:  # CI runs as root, and bootstrap installs Debian's chromium
            pytest.fail("chromium is not installed (scripts/bootstrap installs it as root)")
        pytest.skip("chromium is not installed (run scripts/bootstrap as root)")
    return found


def browse(html: Path, tmp_path: Path, *extra: str) -> str:
    argv = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        *extra,
        html.resolve().as_uri(),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def body_state(dom: str) -> tuple[str, str]:
    m = re.search(r"<body([^>]*)>", dom)
    assert m is not None, dom[:500]
    attrs = m.group(1)
    status = re.search(r'data-status="([^"]*)"', attrs)
    errors = re.search(r'data-errors="([^"]*)"', attrs)
    return (status.group(1) if status else "", errors.group(1) if errors else "")


def test_seed_data() -> None:
    c = load_cluster(PART2)
    d = report_data(c, [Service("TCP", 80), Service("ICMP")])
    assert d["pods"] == 7 and len(d["groups"]) == 7  # type: ignore[arg-type]
    tcp = d["probes"][0]  # type: ignore[index]
    assert tcp["allowed"] == 28
    names = [g["pods"][0] for g in d["groups"]]  # type: ignore[attr-defined]
    blue, red = names.index("dev/blue"), names.index("dev/red")
    text = d["strings"][tcp["explain"][blue][red]]  # type: ignore[index]
    assert "allowed by dev/allow-tcp-80-from-blue-to-green ingress rule 0" in text
    green = names.index("dev/green")
    text = d["strings"][tcp["explain"][green][red]]  # type: ignore[index]
    assert "verdict: DENIED" in text


def test_page_is_self_contained_and_escapes_data() -> None:
    html = page({"title": "</script><b>x", "probes": [], "strings": ["</script>"]})
    assert "</script><b>" not in html.split('id="data">', 1)[1].split("</script>", 1)[0]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


def test_seed_report_in_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "seed.html"
    assert main(["report", *PART2, "-o", str(out)]) == 0
    assert "7 pods in 7 groups" in capsys.readouterr().out
    dom = browse(out, tmp_path, "--dump-dom")
    status, errors = body_state(dom)
    assert errors == ""
    assert status == "ok"
    # drawn: a heat map cell per group pair, edges, and the first pair's walk shown
    assert dom.count('class="c"') + dom.count('class="c sel"') == 49
    assert 'class="edge' in dom
    assert "flow: pod dev/blue" in dom and "verdict: ALLOWED" in dom
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report-seed.png"
    shot.unlink(missing_ok=True)
    browse(out, tmp_path, "--window-size=1400,1100", f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_script_error_is_seen(tmp_path: Path) -> None:
    # The check can fail: a page whose data is broken reports the error.
    html = page({"title": "broken", "probes": [{"name": "x"}], "namespaces": [], "groups": []})
    f = tmp_path / "broken.html"
    f.write_text(html)
    status, errors = body_state(browse(f, tmp_path, "--dump-dom"))
    assert status != "ok" and errors


def test_thousand_pods_in_chromium(tmp_path: Path) -> None:
    pods = [
        pod(f"ns{n}/p{i}", f"10.244.{n}.{i + 2}", f"node{n % 5}", app=f"a{i % 5}")
        for n in range(20)
        for i in range(50)
    ]
    policies = [
        NetworkPolicy(
            f"ns{n}",
            "web",
            sel(app="a0"),
            ingress=(
                Rule(peers=(Peer(pod_selector=sel(app="a1")),), ports=(PolicyPort("TCP", 80),)),
            ),
        )
        for n in range(20)
    ]
    nodes = [node(f"node{k}", f"192.168.0.{k + 1}", f"10.245.{k}.0/24") for k in range(5)]
    d = report_data(cluster(pods, policies, nodes), [Service("TCP", 80), Service("ICMP")])
    assert d["pods"] == 1000 and len(d["groups"]) == 100  # type: ignore[arg-type]
    f = tmp_path / "big.html"
    f.write_text(page(d))
    status, errors = body_state(browse(f, tmp_path, "--dump-dom"))
    assert (status, errors) == ("ok", "")
