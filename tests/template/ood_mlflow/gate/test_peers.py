"""Reading socket owners from /proc/net/tcp{,6}: a literal sample, then real sockets."""

import ipaddress
import os
import socket

import pytest

from ood_mlflow.gate.peers import client_uid, listener_uids, parse_table

# As the kernel prints them: each 32-bit word of an address in host (little-endian)
# order, ports in hex; 0A = LISTEN, 01 = ESTABLISHED. 1F90 = 8080, C350 = 50000.
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1588 1 0000000000000000 100 0 0 10 0
   2: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1001        0 12346 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 12347 1 0000000000000000 20 4 30 10 -1
   4: garbage line
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1002        0 22222 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:D431 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000  1003        0 22223 1 0000000000000000 20 4 30 10 -1
   2: 00000000000000000000000001000000:A000 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000  1004        0 22224 1 0000000000000000 20 4 30 10 -1
"""
FOUND = parse_table(TCP) + parse_table(TCP6)


def test_addresses_ports_states_and_uids_are_decoded():
    first = parse_table(TCP)[0]
    assert first.local == (ipaddress.ip_address("127.0.0.1"), 8080)
    assert first.remote == (ipaddress.ip_address("0.0.0.0"), 0)
    assert (first.state, first.uid) == ("0A", 1000)
    assert len(parse_table(TCP)) == 4, "the header and a malformed line are skipped"
    assert parse_table(TCP6)[2].local == (ipaddress.ip_address("::1"), 0xA000)


def test_ipv4_mapped_ipv6_addresses_read_as_ipv4():
    # A dual-stack socket lists an IPv4 peer as ::ffff:127.0.0.1 in tcp6.
    mapped = parse_table(TCP6)[1]
    assert mapped.local == (ipaddress.ip_address("127.0.0.1"), 0xD431)
    assert mapped.remote == (ipaddress.ip_address("127.0.0.1"), 8080)


def test_listeners_on_any_address_and_family_count():
    assert listener_uids(8080, FOUND) == {1000, 1002}
    assert listener_uids(22, FOUND) == {0}
    assert listener_uids(50000, FOUND) == set(), "a client's port is not a listener"


def test_client_uid_finds_the_connecting_socket_not_the_server_side():
    assert client_uid("127.0.0.1", 50000, 8080, FOUND) == 1001
    assert client_uid("::ffff:127.0.0.1", 0xD431, 8080, FOUND) == 1003
    assert client_uid("127.0.0.1", 0xD431, 8080, FOUND) == 1003
    assert client_uid("::1", 0xA000, 8080, FOUND) == 1004
    assert client_uid("127.0.0.1", 50000, 9999, FOUND) is None, "another server port"
    assert client_uid("10.0.0.7", 50000, 8080, FOUND) is None, "not a local socket"
    assert client_uid("not an address", 50000, 8080, FOUND) is None


def test_real_sockets_of_this_process():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert listener_uids(port) == {os.getuid()}
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            with accepted:
                ip, client_port = client.getsockname()
                assert client_uid(ip, client_port, port) == os.getuid()
                # No socket of 127.0.0.2 made this connection.
                assert client_uid("127.0.0.2", client_port, port) is None


def test_real_dual_stack_listener_is_found_in_tcp6():
    # A squatter could bind :: as well as 0.0.0.0; an IPv4 client of it is in tcp.
    if not socket.has_ipv6 or not os.path.exists("/proc/net/tcp6"):
        pytest.skip("no IPv6 on this machine")
    with socket.socket(socket.AF_INET6) as server:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        server.bind(("::", 0))
        server.listen()
        port = server.getsockname()[1]
        assert listener_uids(port) == {os.getuid()}
        with socket.create_connection(("127.0.0.1", port)) as client:
            ip, client_port = client.getsockname()
            assert client_uid(ip, client_port, port) == os.getuid()
