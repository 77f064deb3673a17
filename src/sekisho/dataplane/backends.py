"""The backend registry: one object per backend, from rendering to the kernel.

A :class:`Backend` joins what the pure core knows of a backend
(:class:`~sekisho.render.backends.RenderBackend`: render, files, interpreter,
digest) with its applier (the only code that sends its ruleset to the kernel).
The agent, the lab and the CLI look a backend up here by name and never switch
on the name themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sekisho.dataplane.iptables import ApplyResult, IptablesApplier
from sekisho.dataplane.nftables import NftApplier
from sekisho.dataplane.runner import CommandRunner
from sekisho.errors import DataplaneError
from sekisho.render.backends import (
    BACKEND_NAMES,
    RenderBackend,
    Ruleset,
    render_backend,
)
from sekisho.render.iptables import IptablesRuleset
from sekisho.render.nftables import NftRuleset

__all__ = ["BACKEND_NAMES", "Applier", "Backend", "backend"]


@dataclass(frozen=True, slots=True)
class Applier:
    """A backend's applier, typed on the rulesets that backend renders."""

    name: str
    target: IptablesApplier | NftApplier

    def _check(self, ruleset: Ruleset) -> Ruleset:
        want = IptablesRuleset if isinstance(self.target, IptablesApplier) else NftRuleset
        if not isinstance(ruleset, want):
            raise DataplaneError(f"the {self.name} applier was handed a {type(ruleset).__name__}")
        return ruleset

    def apply(self, ruleset: Ruleset, *, refresh: bool = False) -> ApplyResult:
        """Make the kernel hold ``ruleset`` (only what differs, in one transaction)."""
        checked = self._check(ruleset)
        if isinstance(self.target, IptablesApplier):
            assert isinstance(checked, IptablesRuleset)
            return self.target.apply(checked, refresh=refresh)
        assert isinstance(checked, NftRuleset)
        return self.target.apply(checked, refresh=refresh)

    def resync(self, ruleset: Ruleset) -> ApplyResult:
        """Read back what is installed and repair drift."""
        checked = self._check(ruleset)
        if isinstance(self.target, IptablesApplier):
            assert isinstance(checked, IptablesRuleset)
            return self.target.resync(checked)
        assert isinstance(checked, NftRuleset)
        return self.target.resync(checked)

    def drift(self, ruleset: Ruleset) -> tuple[str, ...]:
        """How what is installed differs from ``ruleset`` (reads the kernel; changes nothing)."""
        checked = self._check(ruleset)
        if isinstance(self.target, IptablesApplier):
            assert isinstance(checked, IptablesRuleset)
            return self.target.drift(checked)
        assert isinstance(checked, NftRuleset)
        return self.target.drift(checked)

    def cleanup(self) -> ApplyResult:
        """Remove every object of ours."""
        return self.target.cleanup()

    def first_documents(self, ruleset: Ruleset) -> list[tuple[str, str]]:
        """(tool, document) sent to a node that has nothing of ours yet."""
        checked = self._check(ruleset)
        if isinstance(self.target, IptablesApplier):
            assert isinstance(checked, IptablesRuleset)
            return self.target.first_documents(checked)
        assert isinstance(checked, NftRuleset)
        return self.target.first_documents(checked)


@dataclass(frozen=True, slots=True)
class Backend:
    """One backend: its spelling (render, files, interpreter, digest) and its applier."""

    spelling: RenderBackend
    make: Callable[[CommandRunner, str], IptablesApplier | NftApplier]

    @property
    def name(self) -> str:
        return self.spelling.name

    def applier(self, runner: CommandRunner, prefix: str, *, linger: float = 0.0) -> Applier:
        """This backend's applier; ``linger``: seconds an unreferenced set or chain stays
        before it is deleted (``NftApplier.linger``, ``IptablesApplier.linger``)."""
        target = self.make(runner, prefix)
        target.linger = linger
        return Applier(self.name, target)

    def files(self, ruleset: Ruleset) -> dict[str, str]:
        """File name -> document, as the applier sends them (``sekisho render -o DIR``)."""
        docs = self.applier(_no_commands, ruleset.prefix).first_documents(ruleset)
        return {FILE_NAMES[tool]: text for tool, text in docs}

    def documents(self, ruleset: Ruleset) -> str:
        """What ``sekisho render`` prints: the ruleset's own comment lines (what each set
        holds, notes), then each document exactly as the applier sends it to a node that
        has nothing of ours, after a ``# --- TOOL ---`` line."""
        applier = self.applier(_no_commands, ruleset.prefix)
        docs = applier.first_documents(ruleset)
        if isinstance(ruleset, NftRuleset):
            return "".join(text for _tool, text in docs)
        parts = [ruleset.header()]
        for tool, text in docs:
            parts.append(f"# --- {tool} ---\n")
            parts.append(text)
        return "".join(parts)


FILE_NAMES = {
    "ipset restore": "ipset.restore",
    "iptables-restore --noflush": "iptables.restore",
    "ip6tables-restore --noflush": "ip6tables.restore",
    "nft -f": "ruleset.nft",
}
"""The file ``sekisho render -o DIR`` writes each document to, by the tool that reads it."""


def _no_commands(argv: Sequence[str], *, stdin: str | None = None) -> str:
    raise DataplaneError(f"planning only: no command may run ({' '.join(argv)})")


_REGISTRY: dict[str, Backend] = {
    "iptables": Backend(render_backend("iptables"), IptablesApplier),
    "nftables": Backend(render_backend("nftables"), NftApplier),
}
assert tuple(_REGISTRY) == BACKEND_NAMES


def backend(name: str) -> Backend:
    """The backend called ``name`` (:class:`~sekisho.errors.UsageError` naming the known ones)."""
    found = _REGISTRY.get(name)
    if found is None:
        render_backend(name)  # raises, naming the known ones
        raise AssertionError(name)  # pragma: no cover - the registries list the same names
    return found
