"""Which addresses the service may send requests to (answer_url, event_url).

By default only public addresses: a URL that resolves to loopback, private, link-local,
multicast, reserved or otherwise internal addresses is refused, at create time and again
just before each request (the name may resolve differently by then).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from urllib.parse import urlsplit


class ForbiddenDestination(Exception):
    """The URL points at an address this service will not contact."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


# Name lookups block a thread each. Requests being answered and the engine's background
# sends get pools of their own, so slow DNS behind many webhooks never delays an API answer.
_REQUEST_LOOKUPS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns-request")
_BACKGROUND_LOOKUPS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns-background")


async def resolve(host: str, port: int, dns_timeout: float, *, background: bool) -> list[str]:
    """The addresses a host name resolves to (an IP literal resolves to itself)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    pool = _BACKGROUND_LOOKUPS if background else _REQUEST_LOOKUPS
    lookup = partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    async with asyncio.timeout(dns_timeout):
        infos = await loop.run_in_executor(pool, lookup)
    return sorted({str(info[4][0]) for info in infos})


async def check_destination(
    url: str,
    *,
    allow_private: bool,
    background: bool = False,
    dns_timeout: float = 2.0,
    must_resolve: bool = False,
) -> None:
    """Raise ForbiddenDestination when the URL's host is (or resolves to) an internal address.

    A name that does not resolve passes unless `must_resolve`: at create time it may resolve
    later; at send time the request itself fails and is retried.
    """
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise ForbiddenDestination(f"{url} has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ForbiddenDestination(f"{url} has an invalid port") from exc
    try:
        addresses = await resolve(host, port, dns_timeout, background=background)
    except (OSError, TimeoutError, UnicodeError) as exc:
        if must_resolve:
            raise ForbiddenDestination(f"{host} does not resolve: {exc}") from exc
        return
    internal = [address for address in addresses if not _is_public(address)]
    if internal:
        raise ForbiddenDestination(
            f"{host} resolves to {', '.join(internal)}, an internal address; set "
            "CALLS_ALLOW_PRIVATE_WEBHOOKS=true to allow such destinations"
        )
