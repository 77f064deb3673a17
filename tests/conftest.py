"""Shared fixtures and the rule for privileged (kernel and lab) tests.

Privileged tests run as root in CI, always: there a missing capability is a
failure, not a skip. Elsewhere (a laptop without root) they skip with a reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent

# A loaded CI machine is slow: no property test fails on time, only on its assertions
# (each test's own @settings still picks its examples; these are the defaults under it).
settings.register_profile("sekisho", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("sekisho")
SEED = ROOT / "examples" / "seed"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("CI must run the privileged tests as root")
    skip = pytest.mark.skip(reason="needs root and network namespaces")
    for item in items:
        if "privileged" in item.keywords:
            item.add_marker(skip)
