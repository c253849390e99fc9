"""Where webhooks may be sent: public addresses only, unless the operator allows internal ones.

A tenant's admin chooses the URL, so without this check the service could be made to call its
own network (SSRF): loopback, private ranges, link-local cloud metadata addresses. Two checks:

- when a subscription is made, a literal IP or ``localhost`` that is not public is refused;
- when a delivery is sent, the host name is resolved and the request refused if any address it
  resolves to is not public (so a name that points inside is caught, also after a DNS change).

``WEBHOOK_ALLOW_PRIVATE_TARGETS=true`` lifts both, for receivers on an internal network.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address a webhook may reach, or None."""
    if (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    ):
        return f"{ip} is not a public address"
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
    if host == "localhost" or host.endswith(".localhost"):
        return "localhost is not a public address"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return address_problem(ip)


class PublicOnlyTransport(httpx.HTTPTransport):
    """An HTTP transport that refuses hosts resolving to a non-public address."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Resolve the host, refuse if any address is not public, else send as usual."""
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            msg = f"cannot resolve the webhook host: {type(exc).__name__}"
            raise httpx.ConnectError(msg, request=request) from exc
        for info in infos:
            problem = address_problem(ipaddress.ip_address(info[4][0]))
            if problem is not None:
                msg = f"webhook target refused: {problem}"
                raise httpx.ConnectError(msg, request=request)
        return super().handle_request(request)
