"""Ports for the servers the tests start on 127.0.0.1 (JupyterLab, the hub, a Dask Gateway).

A port is taken below the system's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range),
where the kernel never hands one out by itself: between choosing a port here and the server
binding it, no kernel, Dask worker or connection of the tests running beside (`make test` runs
two workers at once) can take it.
"""

import random
import socket
from pathlib import Path

LOWEST = 10000


def free_ports(n: int = 1) -> int:
    """A port p with p .. p+n-1 free on 127.0.0.1, below the ephemeral range where there is room."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768  # Linux's default
    for _ in range(200):
        port = random.randrange(LOWEST, ephemeral - n) if ephemeral - n > LOWEST + 1000 else _any_port()
        if port + n < 65536 and all(_free(port + k) for k in range(n)):
            return port
    raise RuntimeError(f"no {n} free consecutive ports on 127.0.0.1")


def _any_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
