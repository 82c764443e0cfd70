"""The client's address: X-Forwarded-For believed only from TRUSTED_PROXIES, right to left."""

from web.client_address import client_address

PROXIES = ("10.0.0.0/8", "2001:db8:ffff::/48")


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says():
    assert client_address("127.0.0.1", ["198.51.100.7"], ()) == "127.0.0.1"
    assert client_address("203.0.113.9", ["198.51.100.7"], ()) == "203.0.113.9"


def test_an_untrusted_peer_cannot_claim_another_address():
    assert client_address("203.0.113.9", ["198.51.100.7"], PROXIES) == "203.0.113.9"
    # Loopback is not trusted unless named.
    assert client_address("127.0.0.1", ["198.51.100.7"], PROXIES) == "127.0.0.1"


def test_a_trusted_peer_gives_the_right_most_untrusted_address():
    assert client_address("10.0.0.5", ["198.51.100.7"], PROXIES) == "198.51.100.7"
    # The client wrote its own header: only what our proxies appended counts.
    assert client_address("10.0.0.5", ["6.6.6.6, 198.51.100.7"], PROXIES) == "198.51.100.7"
    # Two proxies of ours in a row; the header split over two lines.
    assert (
        client_address("10.0.0.5", ["6.6.6.6, 198.51.100.7", "10.2.3.4"], PROXIES) == "198.51.100.7"
    )


def test_addresses_as_proxies_write_them():
    assert client_address("10.0.0.5", ["198.51.100.7:4711"], PROXIES) == "198.51.100.7"
    assert client_address("10.0.0.5", ["[2001:db8::1]:4711"], PROXIES) == "2001:db8::1"
    assert client_address("2001:db8:ffff::2", ["2001:db8::1"], PROXIES) == "2001:db8::1"
    assert client_address("::ffff:10.0.0.5", ["198.51.100.7"], PROXIES) == "198.51.100.7"


def test_only_proxies_or_garbage_leave_the_last_sure_address():
    assert client_address("10.0.0.5", ["10.9.9.9"], PROXIES) == "10.9.9.9"
    assert client_address("10.0.0.5", ["unknown"], PROXIES) == "10.0.0.5"
    assert client_address("10.0.0.5", ["198.51.100.7, nonsense, 10.2.3.4"], PROXIES) == "10.2.3.4"
    assert client_address("10.0.0.5", [], PROXIES) == "10.0.0.5"
