"""The server every lab pod runs: ``python -m sekisho.lab.server --name NS/POD --tcp 80 --udp 80``.

Started inside the pod's namespace (``ip netns exec``). On each TCP port it
answers any HTTP request with one JSON line; on each UDP port it answers each
datagram with the same. The answer names the pod, the port and the client
address the server saw, so SNAT is visible::

    {"pod": "dev/blue", "port": 80, "protocol": "TCP", "client": "10.244.3.6:41234"}

Standard library only, so it starts fast. Once every socket is bound it writes
the ``--ready`` file; SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import sys
import threading


def answer(
    name: str,
    port: int,
    protocol: str,
    client: tuple[str, int] | tuple[str, int, int, int],
    path: str = "",
) -> bytes:
    """The JSON document a probe expects back."""
    doc: dict[str, object] = {
        "pod": name,
        "port": port,
        "protocol": protocol,
        "client": f"[{client[0]}]:{client[1]}" if ":" in client[0] else f"{client[0]}:{client[1]}",
    }
    if path:
        doc["path"] = path
    return (json.dumps(doc) + "\n").encode()


def _serve_http(conn: socket.socket, name: str, port: int, client: tuple[str, int]) -> None:
    try:
        # A held connection (lab/author.py) sends a header every 0.4 s; a loaded machine
        # may space them further: wait long before calling a client gone.
        conn.settimeout(10.0)
        data = b""
        while b"\r\n\r\n" not in data and b"\n\n" not in data and len(data) < 8192:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        first = data.split(b"\n", 1)[0].decode("latin-1").split()
        path = first[1] if len(first) > 1 else ""
        body = answer(name, port, "TCP", client, path)
        head = (
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        conn.sendall(head + body)
    except OSError:
        pass
    finally:
        conn.close()


def _bound(kind: int, port: int) -> list[socket.socket]:
    """One socket per family on ``port``: IPv4, and IPv6 (IPv6 only, so each family's
    client address is reported as itself) where the namespace has IPv6."""
    out = []
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    out.append(s)
    try:
        s6 = socket.socket(socket.AF_INET6, kind)
        s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s6.bind(("::", port))
        out.append(s6)
    except OSError:
        pass  # no IPv6 in this namespace: IPv4 only
    for sock in out:
        sock.setblocking(False)
    return out


def serve(name: str, tcp: list[int], udp: list[int], ready: str | None) -> None:
    """Bind every port, signal readiness, then answer until terminated."""
    sel = selectors.DefaultSelector()
    for port in tcp:
        for s in _bound(socket.SOCK_STREAM, port):
            s.listen(256)
            sel.register(s, selectors.EVENT_READ, ("TCP", port))
    for port in udp:
        for u in _bound(socket.SOCK_DGRAM, port):
            sel.register(u, selectors.EVENT_READ, ("UDP", port))
    if ready:
        tmp = ready + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(tmp, ready)
    while True:
        for key, _ in sel.select():
            protocol, port = key.data
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                if protocol == "TCP":
                    conn, client = sock.accept()
                    conn.setblocking(True)
                    threading.Thread(
                        target=_serve_http, args=(conn, name, port, client), daemon=True
                    ).start()
                else:
                    _, client = sock.recvfrom(2048)
                    sock.sendto(answer(name, port, "UDP", client), client)
            except OSError:
                continue


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sekisho.lab.server")
    ap.add_argument("--name", required=True)
    ap.add_argument("--tcp", type=int, action="append", default=[])
    ap.add_argument("--udp", type=int, action="append", default=[])
    ap.add_argument("--ready")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(args.name, args.tcp, args.udp, args.ready)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
