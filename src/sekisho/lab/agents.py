"""How the lab knows an agent applied what it was given: its ready file.

``sekisho agent --ready-file PATH`` rewrites PATH after each good apply with
JSON carrying the generation and a fingerprint of the ruleset it applied.
The lab renders each node's ruleset itself with the agent's own renderer and
waits until the ready file shows that fingerprint, so an agent that applied an
intermediate state (or has not yet seen the change) is never taken as done,
and a node whose rules do not change is done at once. When the fingerprint
cannot be computed it falls back to "the ready file changed".
"""

from __future__ import annotations

import json
import logging

from sekisho.model.types import Cluster

log = logging.getLogger(__name__)

AGENT_PREFIX = "sekisho"
"""The agents' default object prefix (the lab's own NAT table uses a different name)."""
LOG_GROUP = 20
"""The nfnetlink_log group the lab's agents render Log rules to (``--log-group``): a kernel
``LOG`` rule writes nothing inside a network namespace unless the host sets
``nf_log_all_netns`` (never changed here); :mod:`sekisho.lab.logs` reads the group in each
node instead. Not 1 or 2, which Calico's Felix uses for its own NFLOG rules."""


def expected_fingerprints(
    cluster: Cluster, nodes: list[str], backend: str, log_group: int | None = None
) -> dict[str, str]:
    """Per node, the fingerprint the agent's ready file shows once it enforces ``cluster``."""
    from sekisho.agent import full_renderer
    from sekisho.dataplane.backends import backend as backend_named

    spelling = backend_named(backend).spelling
    return {
        node: spelling.digest(
            full_renderer(cluster, node, spelling.name, AGENT_PREFIX, log_group=log_group)
        )
        for node in nodes
    }


def fingerprint_of(text: str | None) -> str | None:
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    value = doc.get("fingerprint") if isinstance(doc, dict) else None
    return str(value) if value else None


def revision_of(text: str | None) -> int:
    """The store revision a ready file says its ruleset was rendered from (-1: none)."""
    try:
        doc = json.loads(text or "")
    except ValueError:
        return -1
    value = doc.get("revision") if isinstance(doc, dict) else None
    return value if isinstance(value, int) else -1


def applied(
    text: str | None, before: str | None, want: str | None, revision: int | None = None
) -> bool:
    """Whether a ready file's ``text`` shows the wanted fingerprint (or, without one, a change),
    rendered from store revision ``revision`` or later when given.

    A fingerprint alone can be an older state's that renders the same on this node,
    with changes the agent has not seen yet still to come (and to apply, one by one):
    with the revision, the agent never applies a state older than it again."""
    if text is None or not text.strip():
        return False
    if revision is not None and revision_of(text) < revision:
        return False
    if want is not None:
        return fingerprint_of(text) == want
    return before is None or text != before
