"""The seed's ingress controller: a real nginx reverse proxy in its pod.

nginx runs from Debian's package inside the controller pod's namespace, with
its configuration, pid file, logs and temp paths in the lab's state directory.
``/<namespace>/<pod>`` proxies to that pod's first TCP port, so the backend sees
the controller's IP as the client (seed finding 5); ``/`` answers like the
lab's own server so probes of the controller pod work as for any other pod.
"""

from __future__ import annotations

from pathlib import Path

from sekisho.lab.topology import Plan, PodPlan
from sekisho.model.types import Pod


def is_ingress_controller(pod: Pod | None) -> bool:
    """The seed's controller: ``app=nginx-ingress`` or a pod named ``*ingress-controller*``."""
    if pod is None or pod.host_network:
        return False
    return pod.labels.get("app") == "nginx-ingress" or "ingress-controller" in pod.name


def nginx_config(p: Plan, pod: PodPlan, prefix: Path) -> str:
    """nginx.conf for ``pod``: listens on its TCP ports, proxies ``/ns/name`` to each backend."""
    tmp = prefix / "tmp"
    listens = "".join(f"        listen {port};\n" for port in pod.tcp)
    if pod.ip6 is not None:  # a dual-stack controller answers over IPv6 too
        listens += "".join(f"        listen [::]:{port};\n" for port in pod.tcp)
    locations = []
    for b in p.pods:
        if b.key == pod.key or not b.tcp:
            continue
        upstream = f"http://{b.ip}:{b.tcp[0]}/"
        for loc in (f"= /{b.key}", f"/{b.key}/"):
            locations.append(
                f"        location {loc} {{\n"
                f"            proxy_pass {upstream};\n"
                "            proxy_connect_timeout 1s;\n"
                "            proxy_read_timeout 10s;\n"
                "            proxy_set_header X-Forwarded-For $remote_addr;\n"
                "        }\n"
            )
    own = (
        '{"pod": "' + pod.key + '", "port": $server_port, "protocol": "TCP",'
        ' "client": "$remote_addr:$remote_port", "path": "$request_uri"}'
    )
    return (
        "daemon off;\n"
        "master_process on;\n"
        "worker_processes 1;\n"
        "user root;\n"
        f"pid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/error.log warn;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        "    access_log off;\n"
        f"    client_body_temp_path {tmp}/body;\n"
        f"    proxy_temp_path {tmp}/proxy;\n"
        f"    fastcgi_temp_path {tmp}/fastcgi;\n"
        f"    uwsgi_temp_path {tmp}/uwsgi;\n"
        f"    scgi_temp_path {tmp}/scgi;\n"
        "    server {\n"
        f"{listens}"
        "        location = / {\n"
        "            default_type application/json;\n"
        f"            return 200 '{own}\\n';\n"
        "        }\n"
        f"{''.join(locations)}"
        "    }\n"
        "}\n"
    )
