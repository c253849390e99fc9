"""Where webhooks may be sent: globally routable addresses only, unless the operator allows more.

A tenant's admin chooses the URL, so without this check the service could be made to call its
own network (SSRF): loopback, private ranges, link-local and shared address space (RFC 6598's
100.64.0.0/10, where some clouds keep their metadata service), and so on. The policy is an
allow-list: an address passes only if :attr:`ipaddress.IPv4Address.is_global` (or the IPv6
one) holds, it is not multicast, it lies in none of the IANA special-purpose blocks listed
below (Python 3.11's ``is_global`` misses some), and an IPv4 address embedded in an IPv6 one
(IPv4-mapped, 6to4, NAT64) passes too. Two checks:

- when a subscription is made, a literal IP (in any form ``inet_aton`` reads, e.g. ``127.1``)
  or ``localhost`` that is not allowed is refused;
- when a delivery is sent, :class:`PublicOnlyTransport` resolves the host *once*, refuses the
  request if any address is not allowed, and connects to the checked address itself (the URL
  is rewritten to the IP, while the ``Host`` header and the TLS server name, SNI and certificate
  check, stay the original name). No second lookup happens, so a DNS answer that changes
  between the check and the connect (rebinding) cannot send the request inside.

``WEBHOOK_ALLOW_PRIVATE_TARGETS=true`` lifts both, for receivers on an internal network.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: IANA special-purpose blocks that are not globally reachable, beyond Python 3.11's list.
_NOT_GLOBAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "192.88.99.0/24",
        "198.18.0.0/15",
        "224.0.0.0/3",  # multicast and the reserved 240/4, 255.255.255.255
        "::/96",  # IPv4-compatible (deprecated)
        "::ffff:0:0/96",  # IPv4-mapped: never a webhook receiver
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a globally routable address a webhook may reach, or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None and address_problem(inner) is not None:
            return f"{ip} embeds {inner}, which is not a globally routable address"
    if not ip.is_global or ip.is_multicast or any(ip in net for net in _NOT_GLOBAL):
        return f"{ip} is not a globally routable address"
    return None


def _literal_ip(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one, including IPv4 shorthands (``127.1``, ``0x7f.1``)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def target_problem(url: str, *, allow_private: bool) -> str | None:
    """Why ``url`` may not be a webhook target, or None when it may (names resolve later)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "the URL must use http or https"
    host = parts.hostname
    if not host:
        return "the URL has no host"
    if allow_private:
        return None
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return "localhost is not a public address"
    ip = _literal_ip(name)
    return None if ip is None else address_problem(ip)


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system resolver), in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PublicOnlyTransport(httpx.BaseTransport):
    """Sends only to globally routable addresses, connecting to the very address it checked.

    Parameters
    ----------
    resolver
        ``(host, port) -> addresses``; the system resolver by default (tests pass their own).
    policy
        ``address -> problem or None``; :func:`address_problem` by default.
    inner
        The transport that sends the pinned request; by default an :class:`httpx.HTTPTransport`
        without keep-alive, so a connection verified for one host name is never reused for
        another name that resolves to the same address.
    """

    def __init__(
        self,
        *,
        resolver: Callable[[str, int], Sequence[str]] = resolve,
        policy: Callable[[IPAddress], str | None] = address_problem,
        inner: httpx.BaseTransport | None = None,
    ) -> None:
        self._resolver = resolver
        self._policy = policy
        self._inner = inner or httpx.HTTPTransport(
            limits=httpx.Limits(max_keepalive_connections=0), trust_env=False
        )

    def _addresses(self, request: httpx.Request) -> list[IPAddress]:
        host = request.url.host
        literal = _literal_ip(host)
        if literal is not None:
            return [literal]
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        try:
            found = [ipaddress.ip_address(a.split("%")[0]) for a in self._resolver(host, port)]
        except (OSError, ValueError) as exc:
            msg = f"cannot resolve the webhook host: {type(exc).__name__}"
            raise httpx.ConnectError(msg, request=request) from exc
        if not found:
            msg = "cannot resolve the webhook host: no address"
            raise httpx.ConnectError(msg, request=request)
        return found

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Resolve once, refuse unless every address is allowed, send to a checked address."""
        addresses = self._addresses(request)
        for ip in addresses:
            problem = self._policy(ip)
            if problem is not None:
                msg = f"webhook target refused: {problem}"
                raise httpx.ConnectError(msg, request=request)
        host = request.url.host
        failures: list[httpx.TransportError] = []
        for ip in addresses:
            # The Host header was set from the original URL when the request was built; SNI and
            # the certificate check use the name through the sni_hostname extension.
            request.url = request.url.copy_with(host=str(ip))
            if request.url.scheme == "https" and _literal_ip(host) is None:
                request.extensions = {**request.extensions, "sni_hostname": host}
            try:
                return self._inner.handle_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failures.append(exc)  # the next checked address, if there is one
        raise failures[-1]

    def close(self) -> None:
        """Close the inner transport."""
        self._inner.close()
