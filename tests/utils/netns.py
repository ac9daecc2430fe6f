"""A network namespace joined to the root one by a veth pair: "another machine" for a test.

The namespace gets its own loopback and one veth end; the root namespace keeps the
other end. The two ends share a private /30 of the test's own, and the namespace
has no other route, so whatever runs inside reaches the root namespace only at
its veth address (traffic stays between these two test hosts). Needs root and `ip` (iproute2).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import psutil

PREFIX = "kjg-remote-"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


@dataclass(frozen=True)
class NetNamespace:
    name: str
    host_veth: str
    inner_veth: str
    host_address: str  # on the root namespace's end of the veth link
    inner_address: str  # inside the namespace
    prefix_length: int

    @property
    def exec_prefix(self) -> list[str]:
        """Prepend to an argv to run it inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    @property
    def network(self) -> str:
        """The link's /30, e.g. `10.213.7.0/30`."""
        return str(ipaddress.ip_interface(f"{self.host_address}/{self.prefix_length}").network)

    def pids(self) -> list[int]:
        result = _ip("netns", "pids", self.name, check=False)
        return [int(pid) for pid in result.stdout.split()]

    def contains(self, pid: int) -> bool:
        """Whether process `pid` lives in this namespace."""
        try:
            return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"


def _kill_all_in(name: str) -> None:
    result = _ip("netns", "pids", name, check=False)
    procs = []
    for pid in result.stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(int(pid)))
    psutil.wait_procs(procs, timeout=10)


def remove_stale_namespaces() -> None:
    """Namespaces this helper made in test runs that died without cleaning up."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        match = re.match(rf"({re.escape(PREFIX)}(\d+))\b", line)
        if match and not psutil.pid_exists(int(match.group(2))):
            _kill_all_in(match.group(1))
            _ip("netns", "del", match.group(1), check=False)


def _free_link_network(base: str = "10.213.7.0/24") -> ipaddress.IPv4Network:
    """The first /30 of `base` that no interface here uses (concurrent runs get their own)."""
    used = [
        ipaddress.ip_interface(word)
        for line in _ip("-o", "-4", "addr", "show").stdout.splitlines()
        for word in line.split()
        if re.fullmatch(r"\d+\.\d+\.\d+\.\d+/\d+", word)
    ]
    for network in ipaddress.IPv4Network(base).subnets(new_prefix=30):
        if not any(address.network.overlaps(network) for address in used):
            return network
    raise RuntimeError(f"every /30 of {base} is in use")


@contextlib.contextmanager
def network_namespace() -> Iterator[NetNamespace]:
    """A namespace linked to the root one by veth; removed, with what runs in it, at the end.

    The link's /30 comes from 10.213.7.0/24: the root namespace's end gets its first
    host address, the namespace the second.
    """
    remove_stale_namespaces()
    network = _free_link_network()
    host, inner = (str(address) for address in network.hosts())
    prefix_length = network.prefixlen
    suffix = str(os.getpid())
    ns = NetNamespace(
        name=f"{PREFIX}{suffix}",
        host_veth=f"kjgh{suffix}"[:15],
        inner_veth=f"kjgw{suffix}"[:15],
        host_address=host,
        inner_address=inner,
        prefix_length=prefix_length,
    )
    _ip("netns", "add", ns.name)
    try:
        _ip("link", "add", ns.host_veth, "type", "veth", "peer", "name", ns.inner_veth)
        _ip("link", "set", ns.inner_veth, "netns", ns.name)
        _ip("addr", "add", f"{host}/{prefix_length}", "dev", ns.host_veth)
        _ip("link", "set", ns.host_veth, "up")
        inside = ["netns", "exec", ns.name, "ip"]
        _ip(*inside, "addr", "add", f"{inner}/{prefix_length}", "dev", ns.inner_veth)
        _ip(*inside, "link", "set", ns.inner_veth, "up")
        _ip(*inside, "link", "set", "lo", "up")
        yield ns
    finally:
        _kill_all_in(ns.name)
        _ip("link", "del", ns.host_veth, check=False)  # takes its peer along
        _ip("netns", "del", ns.name, check=False)
