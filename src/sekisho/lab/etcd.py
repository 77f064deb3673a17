"""etcd for the lab, the tests and the benches: certificates, members, roles.

Debian's ``etcd`` (package ``etcd-server``) runs as the store. Everything here
listens on loopback (:class:`LocalEtcd`, for tests and benches) or inside the
lab's own namespaces (:mod:`sekisho.lab.store`), never elsewhere.

Security, as a cluster operator would set it up:

- TLS everywhere: a CA made per run (``openssl``), member certificates for the
  members' addresses, a client certificate per user; members require client
  certificates (``--client-cert-auth``), so a client without one is refused at
  the TLS handshake.
- etcd's own auth with roles: ``root``; ``sekisho-writer`` (read and write the
  prefix: ``sekisho apply``); ``sekisho-agent`` (read only: agents). The gRPC
  gateway takes no identity from a certificate, so users log in with a password
  (:class:`~sekisho.sources.etcd.EtcdClient` keeps the token).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sekisho.errors import LabError, StoreError
from sekisho.sources.etcd import DEFAULT_PREFIX, EtcdClient, EtcdConfig, _b64, _range_end

ETCD = shutil.which("etcd") or "/usr/bin/etcd"

MAX_TXN_OPS = 20000
WRITER = "sekisho-writer"
AGENT = "sekisho-agent"
USERS = ("root", WRITER, AGENT)


@dataclass(frozen=True, slots=True)
class Certs:
    """Files of one run's PKI (PEM)."""

    dir: Path

    @property
    def ca(self) -> str:
        return str(self.dir / "ca.pem")

    def cert(self, name: str) -> str:
        return str(self.dir / f"{name}.pem")

    def key(self, name: str) -> str:
        return str(self.dir / f"{name}-key.pem")


def _openssl(args: Sequence[str], cwd: Path) -> None:
    try:
        proc = subprocess.run(
            ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
        )
    except FileNotFoundError as exc:
        raise LabError("openssl is not installed (apt-get install openssl)") from exc
    if proc.returncode != 0:
        raise LabError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()}")


def make_certs(dir: Path, member_ips: Sequence[str], clients: Sequence[str] = USERS) -> Certs:
    """A CA, one certificate for every member (for each address: server and client use, as
    the gateway dials its own member with it) and one client certificate per user."""
    dir.mkdir(parents=True, exist_ok=True)
    os.chmod(dir, 0o700)
    _openssl(
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2", "-subj", "/CN=sekisho-lab-ca"],
        dir,
    )  # fmt: skip
    sans = ",".join(f"IP:{ip}" for ip in (*member_ips, "127.0.0.1"))
    jobs = [
        (
            "member",
            "etcd-member",
            f"subjectAltName={sans}\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
    ]
    # No CN on client certificates: etcd refuses a gateway request whose certificate has
    # one while auth is on (it would not be the user), so the user logs in instead.
    jobs += [(c, "", "extendedKeyUsage=clientAuth\n") for c in clients]
    for name, cn, ext in jobs:
        (dir / f"{name}.ext").write_text(ext)
        _openssl(
            ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", f"/CN={cn}" if cn else f"/O=sekisho/OU={name}"],
            dir,
        )  # fmt: skip
        _openssl(
            ["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext"],
            dir,
        )  # fmt: skip
    return Certs(dir)


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    ip: str
    client_port: int = 2379
    peer_port: int = 2380

    def client_url(self, tls: bool) -> str:
        return f"{'https' if tls else 'http'}://{self.ip}:{self.client_port}"

    def peer_url(self, tls: bool) -> str:
        return f"{'https' if tls else 'http'}://{self.ip}:{self.peer_port}"


def member_argv(
    m: Member, members: Sequence[Member], data: Path, certs: Certs | None, *, new: bool = True
) -> list[str]:
    """The command line of one member of ``members``."""
    tls = certs is not None
    argv = [
        ETCD,
        "--name", m.name,
        "--data-dir", str(data),
        "--listen-client-urls", m.client_url(tls),
        "--advertise-client-urls", m.client_url(tls),
        "--listen-peer-urls", m.peer_url(tls),
        "--initial-advertise-peer-urls", m.peer_url(tls),
        "--initial-cluster", ",".join(f"{x.name}={x.peer_url(tls)}" for x in members),
        "--initial-cluster-state", "new" if new else "existing",
        "--initial-cluster-token", "sekisho-lab",
        "--heartbeat-interval", "50",
        "--election-timeout", "500",
        "--experimental-watch-progress-notify-interval", "2s",
        # One `sekisho apply` is one transaction: allow whole clusters in one (the
        # defaults, 128 operations and 1.5 MiB, would refuse a few hundred objects).
        "--max-txn-ops", str(MAX_TXN_OPS),
        "--max-request-bytes", str(64 << 20),
        "--logger", "zap",
        "--log-level", "warn",
    ]  # fmt: skip
    if certs is not None:
        argv += [
            "--cert-file", certs.cert("member"), "--key-file", certs.key("member"),
            "--trusted-ca-file", certs.ca, "--client-cert-auth",
            "--peer-cert-file", certs.cert("member"), "--peer-key-file", certs.key("member"),
            "--peer-trusted-ca-file", certs.ca, "--peer-client-cert-auth",
        ]  # fmt: skip
    return argv


def client_config(
    endpoints: Sequence[str],
    certs: Certs | None,
    user: str | None,
    password: str | None = None,
    prefix: str = DEFAULT_PREFIX,
    *,
    cert: bool = True,
) -> EtcdConfig:
    """How ``user`` reaches these endpoints (with its client certificate unless ``cert`` is False)."""
    return EtcdConfig(
        tuple(endpoints),
        ca=certs.ca if certs else None,
        cert=certs.cert(user) if certs and user and cert else None,
        key=certs.key(user) if certs and user and cert else None,
        user=user,
        password=password,
        prefix=prefix,
    )


def admin_config(
    endpoints: Sequence[str], certs: Certs, pw: dict[str, str] | None, prefix: str = DEFAULT_PREFIX
) -> EtcdConfig:
    """Root's client: with root's certificate; logged in once auth is on (``pw`` given)."""
    return EtcdConfig(
        tuple(endpoints),
        ca=certs.ca,
        cert=certs.cert("root"),
        key=certs.key("root"),
        user="root" if pw else None,
        password=pw["root"] if pw else None,
        prefix=prefix,
    )


def passwords(certs_dir: Path) -> dict[str, str]:
    """One password per user, made once per run and kept beside the certificates."""
    path = certs_dir / "passwords"
    if path.exists():
        return dict(line.split(" ", 1) for line in path.read_text().splitlines() if line)
    out = {u: os.urandom(12).hex() for u in USERS}
    path.write_text("".join(f"{u} {p}\n" for u, p in out.items()))
    os.chmod(path, 0o600)
    return out


def setup_auth(admin: EtcdClient, pw: dict[str, str], prefix: str = DEFAULT_PREFIX) -> None:
    """Users and roles (writer: read-write the prefix; agent: read it), then auth on."""
    calls: list[tuple[str, dict[str, Any]]] = []
    for user in USERS:
        calls.append(("/auth/user/add", {"name": user, "password": pw[user]}))
    calls.append(("/auth/user/grant", {"user": "root", "role": "root"}))
    for role, perm in ((WRITER, "READWRITE"), (AGENT, "READ")):
        calls.append(("/auth/role/add", {"name": role}))
        calls.append(
            (
                "/auth/role/grant",
                {
                    "name": role,
                    "perm": {
                        "permType": perm,
                        "key": _b64(prefix),
                        "range_end": _b64(_range_end(prefix)),
                    },
                },
            )
        )
        calls.append(("/auth/user/grant", {"user": role, "role": role}))
    calls.append(("/auth/enable", {}))
    for path, body in calls:
        admin.call(path, body)


def wait_healthy(
    client: EtcdClient, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Until a range answers (a leader is elected and the member serves); with ``proc``,
    fail at once if that member exited (it could not bind its ports, say)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise LabError(f"etcd exited with status {proc.returncode}")
        try:
            client.get(client.config.prefix + "meta/write")
            return
        except StoreError as exc:
            if time.monotonic() > deadline:
                raise LabError(f"etcd did not become healthy in {timeout:.0f} s: {exc}") from exc
            time.sleep(0.05)


def free_port() -> int:
    """A loopback port free now, below the kernel's ephemeral range: no connection's
    source port takes it before etcd binds it. Another process can still pick the same
    one (tests run side by side): :meth:`LocalEtcd.start` checks whom it reached."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    low = max(low, 12000)
    while True:
        port = random.randrange(10000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


@dataclass
class LocalEtcd:
    """One etcd member on loopback in a temporary directory, for tests and benches.

    ``tls=True`` adds the PKI, client certificates and the roles (auth enabled).
    Use as a context manager; :meth:`kill` and :meth:`start` stop and restart it
    on the same data (for outage tests).
    """

    tls: bool = False
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sekisho-etcd-")))
    member: Member = field(
        default_factory=lambda: Member(
            f"solo-{os.urandom(4).hex()}", "127.0.0.1", free_port(), free_port()
        )
    )
    """Named uniquely: :meth:`start` tells its own member from another run's on the port."""
    certs: Certs | None = None
    pw: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return self.member.client_url(self.tls)

    def config(self, user: str | None = None, **kwargs: Any) -> EtcdConfig:
        if not self.tls:
            return EtcdConfig((self.endpoint,), **kwargs)
        user = user or WRITER
        return client_config(
            [self.endpoint], self.certs, user, kwargs.pop("password", self.pw.get(user)), **kwargs
        )

    def start(self) -> LocalEtcd:
        """Start (or restart, on the same ports and data) the member; wait until it serves.

        The ports were only seen free (:func:`free_port`): if the member cannot bind them,
        or a member of another run answers there, a first start tries other ports."""
        first = self.proc is None and not (self.dir / "data").exists()
        if self.tls and self.certs is None:
            self.certs = make_certs(self.dir / "pki", ["127.0.0.1"])
            self.pw = passwords(self.dir / "pki")
        for attempt in range(5):
            try:
                return self._start(first)
            except LabError:
                self.kill()
                if not first or attempt == 4:
                    raise
                shutil.rmtree(self.dir / "data", ignore_errors=True)
                self.member = Member(self.member.name, self.member.ip, free_port(), free_port())
        raise AssertionError("unreachable")

    def _start(self, first: bool) -> LocalEtcd:
        argv = member_argv(self.member, [self.member], self.dir / "data", self.certs)
        with open(self.dir / "etcd.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        if self.tls:
            assert self.certs is not None
            client = EtcdClient(
                admin_config([self.endpoint], self.certs, None if first else self.pw)
            )
        else:
            client = EtcdClient(self.config())
        try:
            wait_healthy(client, proc=self.proc)
            members = client.call("/cluster/member/list", {}).get("members", [])
            if self.member.name not in [m.get("name") for m in members]:
                raise LabError(f"{self.endpoint} is another etcd, not {self.member.name}")
            if self.tls and first:
                setup_auth(client, self.pw)
        finally:
            client.close()
        return self

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalEtcd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
