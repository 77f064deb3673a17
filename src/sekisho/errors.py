"""Every error sekisho raises on purpose, as one tree.

    SekishoError                 base of everything below; catch it at the CLI seam
    ├── InputError               the user's input is wrong; exit status 2
    │   ├── ManifestError        manifests did not load or validate (carries every problem)
    │   └── UsageError           a flag or a flow names something that does not exist
    ├── DataplaneError           the kernel or a netfilter tool refused what we asked
    │   ├── CommandFailed        a command (iptables-restore, ipset, nft, ip) exited non-zero
    │   └── ToolMissing          a tool we need is not installed
    ├── StoreError               the cluster's store (etcd) failed or refused a request
    │   ├── StoreUnavailable     no endpoint answered, or the watch is out of step with etcd
    │   └── StoreConflict        a write raced another (the store changed since it was read)
    └── LabError                 the lab could not build, probe or remove a namespace

Foreign exceptions (yaml, OSError, subprocess) are translated at the seam where
they happen, with ``raise X(...) from exc``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sekisho.records import Record, set_field


class SekishoError(Exception):
    """Base of every error sekisho raises on purpose."""


class InputError(SekishoError):
    """The user's input is wrong; the CLI exits with status 2."""


class Problem(Record):
    """One validation problem, printed as ``FILE:LINE: KIND NS/NAME: FIELD.PATH: message``."""

    __slots__ = ("file", "kind", "line", "message", "name", "path")

    file: str
    line: int
    kind: str
    """Object kind, or ``""`` when the problem is about the file itself."""
    name: str
    """``namespace/name`` or ``name``; ``""`` when unknown."""
    path: str
    """Field path such as ``spec.ingress[0].from[1].ipBlock.cidr``; ``""`` for the whole object."""
    message: str

    def __init__(self, file: str, line: int, kind: str, name: str, path: str, message: str) -> None:
        set_field(self, "file", file)
        set_field(self, "line", line)
        set_field(self, "kind", kind)
        set_field(self, "name", name)
        set_field(self, "path", path)
        set_field(self, "message", message)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.kind or self.name:
            parts.append(" ".join(p for p in (self.kind, self.name) if p))
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "kind": self.kind,
            "name": self.name,
            "path": self.path,
            "message": self.message,
        }


class ManifestError(InputError):
    """Manifests did not load or validate; ``problems`` holds every one found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        first = str(self.problems[0]) if self.problems else "invalid manifests"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(first + more)


class UsageError(InputError):
    """A flag or a flow names something that does not exist in the cluster."""


class DataplaneError(SekishoError):
    """The kernel or a netfilter tool refused what we asked."""


class CommandFailed(DataplaneError):
    """A command exited non-zero; carries the command, status and stderr."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"{' '.join(self.argv)} exited {returncode}: {stderr.strip()}")


class ToolMissing(DataplaneError):
    """A tool we need (iptables-restore, ipset, nft, ip) is not installed."""


class StoreError(SekishoError):
    """The cluster's store (etcd) failed or refused a request."""


class StoreUnavailable(StoreError):
    """No etcd endpoint answered, or the watch is out of step: nothing newer can be trusted."""


class StoreConflict(StoreError):
    """A write raced another: the objects changed since they were read; nothing was written."""


class LabError(SekishoError):
    """The lab could not build, probe or remove its namespaces."""
