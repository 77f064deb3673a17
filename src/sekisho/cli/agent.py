"""``sekisho agent``: enforce policies on one node (or one network namespace) and keep them right."""

from __future__ import annotations

from typing import Any

import click

from sekisho.cli.options import (
    backend_option,
    etcd_config,
    etcd_options,
    log_group_option,
    prefix_option,
)


@click.command(name="agent")
@click.option("--node", required=True, help="The node whose ruleset to enforce.")
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=True, dir_okay=True),
    help="Directory of manifests (as `validate` takes), followed with inotify.",
)
@etcd_options()
@click.option("--netns", default=None, help="Apply inside this network namespace (ip netns exec).")
@backend_option("Dataplane to program.")
@prefix_option("Prefix of every object we own.")
@log_group_option()
@click.option(
    "--resync",
    type=click.FloatRange(min=0.05),
    default=10.0,
    show_default=True,
    help="Seconds between read-backs that repair drift.",
)
@click.option(
    "--debounce",
    type=click.FloatRange(min=0.0, max=5.0),
    default=0.005,
    show_default=True,
    help="Seconds of quiet after the last file event before reloading (a burst is one "
    "change; reported 0.25 s after its first event at the latest).",
)
@click.option(
    "--metrics-port", type=int, default=None, help="Serve /metrics, /healthz, /readyz here."
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Written (JSON with the generation) after each good apply.",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("-v", "--verbose", is_flag=True, help="Log every change (debug level).")
@click.option("--once", is_flag=True, help="Sync once and exit (status 1 if it failed).")
@click.option("--cleanup", is_flag=True, help="Remove every object we own (all backends) and exit.")
def agent(
    node: str,
    source: str | None,
    netns: str | None,
    backend: str,
    prefix: str,
    log_group: int | None,
    resync: float,
    debounce: float,
    metrics_port: int | None,
    metrics_host: str,
    ready_file: str | None,
    log_format: str,
    verbose: bool,
    once: bool,
    cleanup: bool,
    **etcd: Any,
) -> int:
    """Enforce NetworkPolicy on NODE from --source DIR or --etcd URLS; runs until SIGTERM/SIGINT.

    With --etcd it lists the store, then watches it from that revision (relisting
    after a compaction); while etcd is unreachable it keeps enforcing the last good
    state, reports degraded on /readyz and reconnects with backoff.

        Rules stay in place when the agent stops (they keep enforcing); use
        --cleanup to remove them.
    """
    import json
    import logging
    import signal
    import threading

    from sekisho.agent import Agent, AgentMetrics, HealthServer
    from sekisho.agent import cleanup as cleanup_all
    from sekisho.agent.logs import configure
    from sekisho.errors import UsageError
    from sekisho.render.names import check_prefix

    check_prefix(prefix)  # a bad prefix is a usage error now, not a degraded agent later
    configure(
        "json" if log_format == "json" else "text", logging.DEBUG if verbose else logging.INFO
    )
    log = logging.getLogger("sekisho.agent")
    if cleanup:
        result = cleanup_all(netns=netns, prefix=prefix)
        for change in result.changes:
            click.echo(change)
        click.echo(f"removed {len(result.changes)} object(s) with prefix {prefix!r}", err=True)
        return 0
    config = etcd_config(etcd)
    if (source is None) == (config is None):
        raise UsageError(
            "give one of --source DIR (a directory of manifests) or --etcd URLS, unless --cleanup"
        )
    metrics = AgentMetrics()
    the_source: Any = source
    if config is not None:
        from sekisho.sources.etcd import EtcdSource

        the_source = EtcdSource(config, observer=metrics, debounce=debounce)
    the_agent = Agent(
        node=node,
        source=the_source,
        netns=netns,
        backend="nftables" if backend == "nftables" else "iptables",
        prefix=prefix,
        resync=resync,
        debounce=debounce,
        ready_file=ready_file,
        metrics=metrics,
        log_group=log_group,
    )
    if once:
        summary = the_agent.sync_once()
        click.echo(json.dumps(summary.to_json(), indent=2))
        return 0 if summary.status in ("applied", "unchanged") else 1
    server = None
    if metrics_port is not None:
        server = HealthServer(
            metrics, the_agent.live, the_agent.ready, host=metrics_host, port=metrics_port
        ).start()
        log.info("serving /metrics, /healthz, /readyz on %s:%d", metrics_host, server.port)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "agent starting",
        extra={
            "fields": {
                "node": node,
                "source": source or config.describe(),
                "netns": netns,
                "backend": backend,
                "prefix": prefix,
                "log_group": log_group,
                "resync": resync,
            }
        },
    )
    try:
        the_agent.run(stop)
    finally:
        if server is not None:
            server.stop()
        if config is not None:
            the_source.close()
    return 0
