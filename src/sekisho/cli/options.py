"""Options several commands share, spelled once so their names, choices and defaults agree."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

BACKENDS = ("iptables", "nftables")
"""The dataplanes sekisho renders and applies: the names of the backend registry
(``sekisho.render.backends.BACKEND_NAMES``, spelled here so that parsing options does not
import the renderer; a test holds them equal)."""


def backend_option(help: str) -> Callable[[F], F]:
    """``--backend iptables|nftables`` (default iptables), with a help text for the command."""
    return click.option(
        "--backend", type=click.Choice(BACKENDS), default="iptables", show_default=True, help=help
    )


def prefix_option(help: str = "Prefix of every chain, set and table we own.") -> Callable[[F], F]:
    """``--prefix P`` (default ``sekisho``): the mark of everything sekisho creates."""
    return click.option("--prefix", default="sekisho", show_default=True, help=help)
