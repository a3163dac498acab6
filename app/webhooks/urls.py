"""The SSRF guard: which URLs a webhook may target.

Checked when an endpoint is created and again before every attempt (DNS may have changed
since). A webhook is a request our servers make to an address a user chose, so without this
a user could make us call our own metadata service, database or admin ports.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

from app.settings import Profile, Settings

MAX_URL_LENGTH = 2000
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # CGNAT (RFC 6598)
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedUrl(ValueError):
    """The rule a URL breaks, in words for the user (the message names `url`)."""


def check_syntax(url: str, settings: Settings) -> SplitResult:
    """The URL's parts, or RefusedUrl: http(s) (https only in prod), a host, no credentials,
    at most MAX_URL_LENGTH characters."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedUrl(f"`url` is longer than {MAX_URL_LENGTH} characters")
    if not url.isprintable() or any(c.isspace() for c in url):
        raise RefusedUrl("`url` contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in range
        host = parts.hostname
    except ValueError:
        raise RefusedUrl("`url` is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise RefusedUrl(f"`url` must be an http or https URL, not {scheme or 'scheme-less'}")
    if settings.profile is Profile.PROD and scheme != "https":
        raise RefusedUrl("`url` must use https (webhooks carry signed data)")
    if parts.username is not None or parts.password is not None:
        raise RefusedUrl(
            "`url` must not contain credentials; authenticate the request by its signature"
        )
    if not host:
        raise RefusedUrl("`url` has no host")
    if port == 0:
        raise RefusedUrl("`url` has port 0")
    return parts


def _embedded_ipv4(address: IpAddress) -> IpAddress:
    """The IPv4 address inside an IPv4-mapped or NAT64 IPv6 address (judged as itself)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refusal(address: IpAddress, settings: Settings) -> str | None:
    """Why a webhook may not go to `address` (None: it may)."""
    address = _embedded_ipv4(address)
    if address.is_unspecified:
        return f"`url` resolves to an unspecified address ({address}); give a routable host"
    if address in METADATA_ADDRESSES:
        return (
            f"`url` resolves to a cloud metadata address ({address}); webhooks may not "
            "target metadata services"
        )
    if address.is_loopback:
        if settings.profile in (Profile.DEV, Profile.TEST):
            return None  # the developer's own receiver, the tests'
        return (
            f"`url` resolves to a loopback address ({address}); webhooks may not target this host"
        )
    if address.is_link_local:
        return (
            f"`url` resolves to a link-local address ({address}); webhooks may not target "
            "link-local networks"
        )
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED_ADDRESS_SPACE:
        return (
            f"`url` resolves to a shared (CGNAT) address ({address}); webhooks may not target "
            "carrier-internal networks"
        )
    if address.is_multicast:
        return f"`url` resolves to a multicast address ({address}); give a unicast host"
    if address.is_reserved:
        return (
            f"`url` resolves to a reserved address ({address}); webhooks may only target "
            "public addresses"
        )
    if address.is_private:
        return (
            f"`url` resolves to a private address ({address}); webhooks may not target "
            "private networks"
        )
    if not address.is_global:
        return (
            f"`url` resolves to a non-public address ({address}); webhooks may only target "
            "public addresses"
        )
    return None


async def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address `host` resolves to (a literal address resolves to itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise RefusedUrl(f"`url`'s host {host!r} does not resolve ({error})") from None
    addresses: list[IpAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # An IPv6 sockaddr may carry a zone ("fe80::1%eth0"): the address is before it.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise RefusedUrl(f"`url`'s host {host!r} does not resolve")
    return addresses


async def check_url(url: str, settings: Settings) -> SplitResult:
    """`check_syntax`, then every address the host resolves to must be allowed (one refused
    address refuses the URL: a client connects to any of them), unless the host is in
    PROPINTEL_WEBHOOK_ALLOWED_HOSTS."""
    parts = check_syntax(url, settings)
    host = (parts.hostname or "").rstrip(".").lower()
    if host in settings.webhook_allowed_hosts:
        return parts
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    for address in await resolve(host, port):
        reason = refusal(address, settings)
        if reason is not None:
            raise RefusedUrl(reason)
    return parts
