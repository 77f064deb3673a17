"""Agent tests reuse the kernel helpers of tests/dataplane (namespaces, small clusters)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dataplane"))
