"""The lab: a virtual cluster of network namespaces on one host (see docs/architecture.md).

Modules (imported where used, so ``python -m sekisho.lab.server`` starts fast):

* :mod:`~sekisho.lab.topology`  the plan: namespaces, veths, addresses, routes, NAT (pure)
* :mod:`~sekisho.lab.netns`     ``ip netns`` add/del/list, scripts inside; spawning and killing children
* :mod:`~sekisho.lab.core`      :class:`~sekisho.lab.core.Lab`: up, apply, run, down; state file
* :mod:`~sekisho.lab.manifests` what the agents watch, written atomically
* :mod:`~sekisho.lab.agents`    when an agent has applied (its ready file's fingerprint)
* :mod:`~sekisho.lab.etcd`      etcd members, certificates, roles; ``LocalEtcd`` on loopback
* :mod:`~sekisho.lab.store`     the lab's three-member etcd and the faults tests inject into it
* :mod:`~sekisho.lab.server`    the server in every pod (HTTP and UDP echo naming the client)
* :mod:`~sekisho.lab.nginx`     the seed's ingress controller as a real nginx
* :mod:`~sekisho.lab.probe`     real probes from inside a namespace and how they are classified
* :mod:`~sekisho.lab.reach`     expected (semantics) against observed, upstream-e2e style
* :mod:`~sekisho.lab.lifecycle` cleanup on every exit path of a one-shot lab
* :mod:`~sekisho.lab.report`    headed sections of PASS/FAIL lines, counted (demo and offline)
* :mod:`~sekisho.lab.demo`      the seed report's findings reproduced with real packets
* :mod:`~sekisho.lab.offline`   the same findings without a kernel: semantics and rendered rules
"""
