"""Which client a sign-in counts against: X-Forwarded-For is believed from trusted proxies only."""

from __future__ import annotations

import pytest

from labeling.platform.clients import LOCAL, UNVERIFIED, client_address, parse_networks, server_trusted
from labeling.platform.config import ConfigError, Settings

UVICORN_DEFAULT = server_trusted({})  # uvicorn takes the header from 127.0.0.1 and ::1


def test_without_trusted_proxies_no_forwarded_header_names_a_client():
    # From this machine, the web server reports the header's last address as the sender's; rotating
    # it on every try must not make every try a new client.
    rotated = {
        client_address(f"203.0.113.{i}", f"203.0.113.{i}", server_trusts=UVICORN_DEFAULT) for i in range(22)
    }
    assert rotated == {UNVERIFIED}
    # From elsewhere, the web server leaves the connection's address alone, and so does Earmark.
    assert client_address("198.51.100.4", "203.0.113.9", server_trusts=UVICORN_DEFAULT) == "198.51.100.4"
    # No header: the address the server saw.
    assert client_address("198.51.100.4", None) == "198.51.100.4"
    assert client_address(None, None) == LOCAL


def test_a_trusted_proxy_names_the_client_it_forwards():
    proxy = parse_networks("10.0.0.5")
    assert (
        client_address("10.0.0.5", "203.0.113.9", trusted=proxy, server_trusts=UVICORN_DEFAULT)
        == "203.0.113.9"
    )
    # The client may write its own header first; the proxy appends the address it saw, the last one.
    forged = "1.2.3.4, 203.0.113.9"
    assert client_address("10.0.0.5", forged, trusted=proxy) == "203.0.113.9"
    # Through two trusted proxies: the nearest address that is not one of them.
    chain = parse_networks("10.0.0.0/24")
    assert client_address("10.0.0.5", "1.2.3.4, 203.0.113.9, 10.0.0.7", trusted=chain) == "203.0.113.9"
    # An untrusted sender's header is ignored even when it names a trusted proxy.
    assert client_address("198.51.100.4", "10.0.0.5", trusted=proxy) == "198.51.100.4"


def test_a_proxy_on_this_machine_is_believed_once_trusted():
    local = parse_networks("127.0.0.1")
    # The web server has put the forwarded address in place of the loopback sender already.
    assert (
        client_address("203.0.113.9", "203.0.113.9", trusted=local, server_trusts=UVICORN_DEFAULT)
        == "203.0.113.9"
    )
    # A web server told to take the header from anywhere cannot be followed by a narrower list.
    anywhere = server_trusted({"FORWARDED_ALLOW_IPS": "*"})
    assert client_address("203.0.113.9", "203.0.113.9", trusted=local, server_trusts=anywhere) == UNVERIFIED


@pytest.mark.parametrize("text", ["10.0.0.300", "proxy.example.org", "10.0.0.0/33"])
def test_a_trusted_proxy_list_that_is_not_addresses_is_refused(text):
    with pytest.raises(ConfigError, match="neither an address nor a network"):
        Settings.from_env({"EARMARK_TRUSTED_PROXIES": text, "EARMARK_DATA_DIR": "/tmp/x"})
    assert Settings.from_env(
        {"EARMARK_TRUSTED_PROXIES": "10.0.0.5, ::1", "EARMARK_DATA_DIR": "/tmp/x"}
    ).trusted_proxies == parse_networks("10.0.0.5,::1")
