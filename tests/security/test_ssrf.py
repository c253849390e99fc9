"""Webhooks reach globally routable addresses only, and the checked address is the one used
(issue 10, defect 3).

The blocks below are written from the IANA IPv4 and IPv6 special-purpose address registries
(entries whose "globally reachable" is False) and the multicast and reserved blocks, not from the
service's table; addresses are drawn at random inside each block (hypothesis), and any of them,
in any notation, must be refused at subscription and at send time.
"""

from __future__ import annotations

import http.server
import ipaddress
import logging
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from app.notify.targets import PublicOnlyTransport, address_problem, target_problem
from tests.conftest import Tenant

#: IANA special-purpose blocks that are not globally reachable, plus multicast and reserved.
IANA_NOT_GLOBAL = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/29",
    "192.0.0.8/32",
    "192.0.0.170/31",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001:2::/48",
    "2001:db8::/32",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
]
#: Blocks assigned to ordinary networks (RIR allocations), globally routable.
GLOBAL = ["8.0.0.0/8", "93.184.216.0/24", "151.101.0.0/16", "2a00:1450::/32", "2606:4700::/32"]


def _inside(blocks: list[str]) -> st.SearchStrategy[Any]:
    nets = [ipaddress.ip_network(b) for b in blocks]

    def pick(net: Any, offset: int) -> Any:
        return net.network_address + offset % net.num_addresses

    return st.builds(pick, st.sampled_from(nets), st.integers(min_value=0, max_value=2**128))


def _url(ip: Any) -> str:
    return f"http://[{ip}]/hook" if ip.version == 6 else f"http://{ip}/hook"


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(ip=_inside(IANA_NOT_GLOBAL))
def test_every_non_global_address_is_refused(ip: Any) -> None:
    assert address_problem(ip) is not None
    assert target_problem(_url(ip), allow_private=False) is not None


@settings(max_examples=100, deadline=None, database=None, derandomize=True)
@given(ip=_inside(GLOBAL))
def test_global_addresses_pass(ip: Any) -> None:
    assert address_problem(ip) is None
    assert target_problem(_url(ip), allow_private=False) is None


@settings(max_examples=100, deadline=None, database=None, derandomize=True)
@given(ip=_inside(["10.0.0.0/8", "127.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16"]))
def test_ipv4_inside_ipv6_is_refused(ip: Any) -> None:
    packed = int(ip)
    for wrapped in (
        ipaddress.IPv6Address((0xFFFF << 32) | packed),  # ::ffff:a.b.c.d
        ipaddress.IPv6Address((0x2002 << 112) | (packed << 80)),  # 6to4
        ipaddress.IPv6Address((0x64FF9B << 96) | packed),  # NAT64
    ):
        assert address_problem(wrapped) is not None, wrapped


@pytest.mark.parametrize(
    "url",
    [
        "http://100.64.0.1/",
        "http://100.100.100.200/latest/meta-data",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://localhost./",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
    ],
)
def test_notations_of_inside_addresses_are_refused_at_subscription(url: str) -> None:
    assert target_problem(url, allow_private=False) is not None


def test_subscribing_shared_address_space_is_422(client: TestClient, tenant: Tenant) -> None:
    r = client.post("/v1/webhooks", json={"url": "http://100.64.0.1/"}, headers=tenant.headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["path"] == "url"


class _Hook(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        _Hook.seen.append((self.path, self.headers.get("Host", "")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


@pytest.fixture
def local_receiver() -> Iterator[int]:
    """An HTTP server on 127.0.0.1 that records what reaches it; yields its port."""
    _Hook.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_dns_rebinding_between_check_and_connect_cannot_reach_inside(
    local_receiver: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # hook.example answers a public address to the first lookup and loopback to every later
    # one: the check must be the only lookup, and the connection must go to what it checked.
    real = socket.getaddrinfo
    calls = {"n": 0}

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "hook.example":
            calls["n"] += 1
            ip = "93.184.216.34" if calls["n"] == 1 else "127.0.0.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port)))]
        if host == "93.184.216.34":  # the pinned connect: no network in tests
            raise socket.gaierror("no network here")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with (
        httpx.Client(transport=PublicOnlyTransport(), timeout=1) as http,
        pytest.raises(httpx.TransportError),
    ):
        http.post(f"http://hook.example:{local_receiver}/x", content=b"{}")
    assert _Hook.seen == []
    assert calls["n"] == 1


def test_the_pinned_address_is_used_with_the_original_host_header(local_receiver: int) -> None:
    lookups: list[str] = []

    def resolver(host: str, _port: int) -> Sequence[str]:
        lookups.append(host)
        return ["127.0.0.1"] if len(lookups) == 1 else ["10.9.9.9"]

    def only_loopback(ip: Any) -> str | None:
        return None if str(ip) == "127.0.0.1" else f"{ip} refused"

    transport = PublicOnlyTransport(resolver=resolver, policy=only_loopback)
    with httpx.Client(transport=transport) as http:
        r = http.post(f"http://hook.example:{local_receiver}/x?token=1", content=b"{}")
    assert r.status_code == 204
    assert _Hook.seen == [("/x?token=1", f"hook.example:{local_receiver}")]
    assert lookups == ["hook.example"]


def test_tls_keeps_the_host_name_for_sni_and_the_certificate() -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    transport = PublicOnlyTransport(
        resolver=lambda _h, _p: ["2606:4700::1111", "93.184.216.34"],
        inner=httpx.MockTransport(record),
    )
    with httpx.Client(transport=transport) as http:
        http.post("https://ecd.example.com/hooks?k=v", content=b"{}")
    (request,) = sent
    assert request.url.host == "2606:4700::1111"
    assert request.url.raw_path == b"/hooks?k=v"
    assert request.headers["Host"] == "ecd.example.com"
    assert request.extensions["sni_hostname"] == "ecd.example.com"


def test_one_inside_address_among_public_ones_refuses_the_send() -> None:
    transport = PublicOnlyTransport(
        resolver=lambda _h, _p: ["93.184.216.34", "100.100.100.200"],
        inner=httpx.MockTransport(lambda _r: httpx.Response(200)),
    )
    with (
        httpx.Client(transport=transport) as http,
        pytest.raises(httpx.ConnectError, match="not a globally routable"),
    ):
        http.post("https://ecd.example.com/hooks", content=b"{}")


def test_the_httpx_logger_never_writes_a_webhook_url(caplog: pytest.LogCaptureFixture) -> None:
    from app.notify.delivery import redact_http_client_logs

    redact_http_client_logs()
    transport = httpx.MockTransport(lambda _r: httpx.Response(200))
    with caplog.at_level(logging.DEBUG), httpx.Client(transport=transport) as http:
        http.post("https://ecd.example.com/tenant-7/hook?token=s3cr3t", content=b"{}")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "s3cr3t" not in text
    assert "tenant-7" not in text
