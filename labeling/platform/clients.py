"""Which client a request comes from, for counting sign-in failures: :func:`client_address`.

The web server reports the address of whoever opened the connection. Behind a reverse proxy that is
the proxy, and the browser's address is in the ``X-Forwarded-For`` header the proxy appends to. The
header holds whatever the sender wrote, so Earmark believes it only from the proxies named in
``EARMARK_TRUSTED_PROXIES`` (addresses or networks, comma-separated; none by default): anyone else
could name a new address on every try and never be slowed down.

Streamlit's web server (uvicorn) applies a rule of its own first: from the addresses in
``FORWARDED_ALLOW_IPS`` (loopback unless set) it reports the address the header names instead of
the connection's. A request carrying the header whose reported address is the one that rule would
pick may therefore not show its real sender. Earmark believes it only when every address the web
server trusts is a trusted proxy; otherwise all such requests count as one client,
:data:`UNVERIFIED`, whatever their header says.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The client a request from this machine counts as (Streamlit reports no address for loopback).
LOCAL = "local"
#: The one client that requests whose forwarded address cannot be checked count as.
UNVERIFIED = "unverified forwarded address"
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_EVERYWHERE: tuple[Network, ...] = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


class ProxyListError(ValueError):
    """``EARMARK_TRUSTED_PROXIES`` names something that is not an address or a network."""


def parse_networks(text: str | None, *, name: str = "EARMARK_TRUSTED_PROXIES") -> tuple[Network, ...]:
    """Comma-separated addresses or networks (``10.0.0.5, 192.168.0.0/16, ::1``); "" gives none."""
    networks: list[Network] = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ProxyListError(
                f"{name} holds {item!r}, which is neither an address nor a network (e.g. 10.0.0.5 or "
                "10.0.0.0/8); separate several with commas"
            ) from None
    return tuple(networks)


def server_trusted(environ: Mapping[str, str] | None = None) -> tuple[Network, ...]:
    """The peers uvicorn takes ``X-Forwarded-For`` from, read as it reads them (``*``: all)."""
    env = os.environ if environ is None else environ
    raw = env.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
    networks: list[Network] = []
    for item in raw.split(","):
        item = item.strip()
        if item == "*":
            return _EVERYWHERE
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue  # a unix socket path or a name: no TCP peer matches it
    return tuple(networks)


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a header entry or a peer: ``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:80``, ``::1``."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text[1:]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _within(ip: object, networks: Iterable[Network]) -> bool:
    return isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address) and any(
        ip.version == n.version and ip in n for n in networks
    )


def _covered(inner: Sequence[Network], outer: Sequence[Network]) -> bool:
    # This machine is one host whichever loopback address it speaks from: trusting one trusts all.
    local = any(o.is_loopback for o in outer)
    return all(
        (local and i.is_loopback) or any(i.version == o.version and i.subnet_of(o) for o in outer)  # type: ignore[arg-type]
        for i in inner
    )


def _pick(hops: Sequence[str], trusted: Sequence[Network]) -> str:
    """The nearest hop that is not a trusted proxy (the farthest, if all are)."""
    for hop in reversed(hops):
        if not _within(_ip(hop), trusted):
            return hop
    return hops[0]


def _name(hop: str) -> str:
    ip = _ip(hop)
    if ip is None:
        return hop.strip()[:100] or UNVERIFIED
    return LOCAL if ip.is_loopback else str(ip)


def client_address(
    reported: str | None,
    forwarded_for: str | None,
    *,
    trusted: Sequence[Network] = (),
    server_trusts: Sequence[Network] = LOOPBACK,
) -> str:
    """The client a request counts as.

    ``reported`` is the address the web server reports (None for loopback), ``forwarded_for`` the
    request's ``X-Forwarded-For`` header, ``trusted`` the proxies of ``EARMARK_TRUSTED_PROXIES`` and
    ``server_trusts`` those the web server itself takes the header from (:func:`server_trusted`).
    """
    hops = [h.strip() for h in (forwarded_for or "").split(",") if h.strip()]
    seen = reported if reported else "127.0.0.1"
    if not hops:
        return _name(seen)
    peer_ip = _ip(seen)
    server_pick = _ip(_pick(hops, server_trusts))
    if peer_ip is not None and peer_ip == server_pick:
        # The web server may have put the header's address in place of its sender, who is then one of
        # the peers it trusts: believable only if all of those are proxies Earmark trusts too.
        return (
            _name(_pick(hops, trusted)) if server_trusts and _covered(server_trusts, trusted) else UNVERIFIED
        )
    if _within(peer_ip, trusted):
        return _name(_pick(hops, trusted))
    return _name(seen)
