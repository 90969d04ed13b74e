"""DIGEST-MD5 client against RFC 2831's worked example (section 4)."""

from __future__ import annotations

from relaykit.verify.digest_md5 import (
    DigestMD5Client,
    DigestParams,
    parse_challenge,
    response_value,
    rspauth_value,
)

RFC_CHALLENGE = (
    'realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",'
    "algorithm=md5-sess,charset=utf-8"
)
RFC = DigestParams(
    username="chris", realm="elwood.innosoft.com", password="secret",
    nonce="OA6MG9tEQGm2hh", cnonce="OA6MHXh6VqTrRk", nc="00000001", qop="auth",
    digest_uri="imap/elwood.innosoft.com",
)


def test_rfc2831_response_and_rspauth() -> None:
    assert response_value(RFC) == "d388dad90d4bbd760a152321f2143af7"
    assert rspauth_value(RFC) == "ea40f60335c427b5527b84dbabcdfffd"


def test_parse_challenge_handles_quotes_and_bare_values() -> None:
    fields = parse_challenge(RFC_CHALLENGE)
    assert fields["realm"] == "elwood.innosoft.com"
    assert fields["nonce"] == "OA6MG9tEQGm2hh"
    assert fields["algorithm"] == "md5-sess"
    assert parse_challenge('a="x\\"y",b=z') == {"a": 'x"y', "b": "z"}


def test_client_round_trip_verifies_server() -> None:
    client = DigestMD5Client("chris", "secret", "imap", "elwood.innosoft.com")
    answer = parse_challenge(client(RFC_CHALLENGE.encode()))
    assert answer["digest-uri"] == "imap/elwood.innosoft.com"
    assert "secret" not in str(answer)  # the password never travels in clear
    params = DigestParams(
        username="chris", realm="elwood.innosoft.com", password="secret",
        nonce="OA6MG9tEQGm2hh", cnonce=answer["cnonce"], nc="00000001", qop="auth",
        digest_uri="imap/elwood.innosoft.com",
    )
    assert answer["response"] == response_value(params)
    assert client(f"rspauth={rspauth_value(params)}".encode()) == ""
    assert client.server_verified


def test_client_detects_wrong_rspauth() -> None:
    client = DigestMD5Client("chris", "secret", "imap", "elwood.innosoft.com")
    client(RFC_CHALLENGE.encode())
    client(b"rspauth=00000000000000000000000000000000")
    assert not client.server_verified
