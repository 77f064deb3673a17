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


def family_option(
    help: str = "IP family of the probes: 4 or 6 (a probe over IPv6 is its own probe: the pods'"
    " IPv6 addresses, ICMPv6 for ICMP). Default: each pod's first address.",
) -> Callable[[F], F]:
    """``--family 4|6``: which addresses of dual-stack pods a probe uses."""
    return click.option(
        "--family",
        type=click.Choice(["4", "6"]),
        default=None,
        help=help,
        callback=lambda _c, _p, v: None if v is None else int(v),
    )


def prefix_option(help: str = "Prefix of every chain, set and table we own.") -> Callable[[F], F]:
    """``--prefix P`` (default ``sekisho``): the mark of everything sekisho creates."""
    return click.option("--prefix", default="sekisho", show_default=True, help=help)


def log_group_option() -> Callable[[F], F]:
    """``--log-group N``: Log rules write to nfnetlink_log group N instead of the kernel log."""
    return click.option(
        "--log-group",
        type=click.IntRange(0, 65535),
        default=None,
        help="Render Log rules as NFLOG to this nfnetlink_log group (read by a listener"
        " such as ulogd, in the node's network namespace) instead of the kernel log"
        " (LOG), with the same prefixes. Default: the kernel log.",
    )


def etcd_options(required: bool = False) -> Callable[[F], F]:
    """``--etcd URLS`` and how to reach it: TLS files, user and password, key prefix.

    Each has an environment variable (``SEKISHO_ETCD``, ``SEKISHO_ETCD_CA``...), so a
    password need not be on a command line.
    """
    opts = [
        click.option(
            "--etcd",
            "etcd",
            envvar="SEKISHO_ETCD",
            required=required,
            default=None,
            help="etcd endpoints, comma-separated (https://HOST:2379,...) [env SEKISHO_ETCD].",
        ),
        click.option(
            "--etcd-ca",
            envvar="SEKISHO_ETCD_CA",
            default=None,
            help="CA of the members' certificates.",
        ),
        click.option(
            "--etcd-cert", envvar="SEKISHO_ETCD_CERT", default=None, help="Client certificate."
        ),
        click.option(
            "--etcd-key", envvar="SEKISHO_ETCD_KEY", default=None, help="Its private key."
        ),
        click.option("--etcd-user", envvar="SEKISHO_ETCD_USER", default=None, help="etcd user."),
        click.option(
            "--etcd-password",
            envvar="SEKISHO_ETCD_PASSWORD",
            default=None,
            help="Its password [env SEKISHO_ETCD_PASSWORD].",
        ),
        click.option(
            "--etcd-password-file",
            envvar="SEKISHO_ETCD_PASSWORD_FILE",
            default=None,
            type=click.Path(exists=True, dir_okay=False),
            help="Read the password from this file instead.",
        ),
        click.option(
            "--etcd-timeout",
            envvar="SEKISHO_ETCD_TIMEOUT",
            type=click.FloatRange(min=0.1),
            default=5.0,
            show_default=True,
            help="Seconds for one request to etcd (a large apply may need more).",
        ),
        click.option(
            "--etcd-prefix",
            envvar="SEKISHO_ETCD_PREFIX",
            default="/sekisho/",
            show_default=True,
            help="Key prefix of the cluster's objects.",
        ),
    ]

    def decorate(f: F) -> F:
        for opt in reversed(opts):
            f = opt(f)
        return f

    return decorate


def etcd_config(kwargs: dict[str, Any]) -> Any:
    """The ``EtcdConfig`` of the ``etcd_*`` options (popped from ``kwargs``); None without --etcd."""
    urls = kwargs.pop("etcd", None)
    names = ("ca", "cert", "key", "user", "password", "prefix")
    values = {n: kwargs.pop(f"etcd_{n}", None) for n in names}
    pw_file = kwargs.pop("etcd_password_file", None)
    timeout = kwargs.pop("etcd_timeout", None)
    if pw_file and not values["password"]:
        with open(pw_file) as fh:
            values["password"] = fh.read().strip()
    if not urls:
        return None
    from sekisho.sources.etcd import EtcdConfig

    return EtcdConfig.parse(urls, timeout=float(timeout or 5.0), **values)
