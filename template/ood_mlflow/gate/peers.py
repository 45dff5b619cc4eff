"""Who owns a TCP socket on this node, read from /proc/net/tcp and /proc/net/tcp6.

Two questions the session asks before it trusts a socket: does every socket
listening on the session's port belong to the session's user (so the readiness
check never sends the secret to a squatter), and does a local connection to
the server come from a process of the session's user. Linux lists every TCP
socket there with its owner's uid, readable by any user.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
LISTEN, ESTABLISHED = "0A", "01"


@dataclass(frozen=True)
class Socket:
    local: tuple  # (ip_address, port)
    remote: tuple
    state: str  # hex state code, "0A" = LISTEN
    uid: int


def _address(text: str) -> tuple:
    """'0100007F:1F90' -> (IPv4Address('127.0.0.1'), 8080); IPv6 alike (32 hex digits).

    The kernel prints each 32-bit word of the address in host (little-endian) order."""
    hex_ip, hex_port = text.split(":")
    raw = bytes.fromhex(hex_ip)
    ordered = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return _plain(ipaddress.ip_address(ordered)), int(hex_port, 16)


def _plain(ip):
    """IPv4 addresses seen through an IPv6 socket (::ffff:a.b.c.d) as IPv4."""
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


def parse_table(text: str) -> list:
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            sockets.append(Socket(_address(fields[1]), _address(fields[2]), fields[3], int(fields[7])))
        except ValueError:
            continue
    return sockets


def sockets(tables=TABLES) -> list:
    found = []
    for table in tables:
        try:
            with open(table, encoding="ascii") as fh:
                found += parse_table(fh.read())
        except OSError:
            continue  # no IPv6 on this node
    return found


def listener_uids(port: int, found=None) -> set:
    """The uids of the sockets listening on `port`, on any address."""
    return {s.uid for s in (sockets() if found is None else found) if s.state == LISTEN and s.local[1] == port}


def client_uid(client_ip: str, client_port: int, server_port: int, found=None):
    """The uid of the local socket that made a connection to `server_port`, or None if it is not local."""
    try:
        ip = _plain(ipaddress.ip_address(client_ip))
    except ValueError:
        return None
    for s in sockets() if found is None else found:
        # Only a live connection: a closed one lingers in TIME_WAIT with uid 0.
        if s.local == (ip, client_port) and s.remote[1] == server_port and s.state == ESTABLISHED:
            return s.uid
    return None


def owner_process(client, server_port: int):
    """A callable: is the peer a local process of this session's user? Asked only when the policy needs to know
    (trusted_proxies is set), as it reads the socket tables."""
    return lambda: bool(client) and client_uid(client[0], int(client[1]), server_port) == os.getuid()
