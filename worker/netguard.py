"""The SSRF guard: which addresses and URLs the fetcher may connect to.

Loopback, private, link-local, carrier-grade NAT, multicast and reserved ranges (IPv4 and IPv6, including
IPv4-mapped IPv6) are refused unless private networks are allowed (tests and the local demo).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from worker.errors import PermanentError, TemporaryError

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def check_url(url: str, allow_private: bool, allow_hosts: frozenset[str] = frozenset()) -> bool:
    """Refuse non-http(s) URLs and, unless allowed, hosts that resolve to a non-public address.

    Returns True when the host is trusted (private networks allowed, or the host is on the allow-list),
    in which case the connected address needs no check either.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentError("bad_url", f"only http(s) URLs are fetched: {url[:200]!r}")
    if allow_private or parts.hostname.lower() in allow_hosts:
        return True
    if parts.port not in (None, 80, 443):
        raise PermanentError("blocked_port", f"non-default port {parts.port}")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TemporaryError("dns", f"{parts.hostname}: {exc}") from None
    for info in infos:
        check_address(str(info[4][0]), allow_private)
    return False


def check_address(address: str, allow_private: bool) -> None:
    if not allow_private and not is_public_address(address):
        raise PermanentError("blocked_address", f"refusing to fetch from non-public address {address}")
