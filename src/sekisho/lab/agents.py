"""How the lab knows an agent applied what it was given: its ready file.

``sekisho agent --ready-file PATH`` rewrites PATH after each good apply with the
generation and hash of what it applied. The lab waits for the file to exist
and, after an apply, to change.
"""

from __future__ import annotations

from pathlib import Path


def applied(text: str | None, before: str | None, manifests: Path) -> bool:
    """Whether a ready file's ``text`` shows an apply newer than ``before``."""
    if text is None or not text.strip():
        return False
    return before is None or text != before
