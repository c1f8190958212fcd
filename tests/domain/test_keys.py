"""tokens.domain.keys: secret keys, digests, encryption at rest, callback HMACs and token ids."""

from __future__ import annotations

import re
import time

import pytest

from tokens.domain import keys


def test_it_matches_upstreams_hmac_test_vector():
    digest = keys.callback_hash(
        callback_secret="tr_dev_secretkey123", internal_id="cmadrg9ir0005o27cexiglxck"
    )
    assert digest == "45779e54b8a79ab625143d3e7e48ac1fe555cd8fbd46e04532fb2f052039c89a"


@pytest.mark.parametrize(
    ("given", "ok"),
    [
        ("45779e54b8a79ab625143d3e7e48ac1fe555cd8fbd46e04532fb2f052039c89a", True),
        ("55779e54b8a79ab625143d3e7e48ac1fe555cd8fbd46e04532fb2f052039c89a", False),
        ("45779E54B8A79AB625143D3E7E48AC1FE555CD8FBD46E04532FB2F052039C89A", False),
        ("45779e54b8a79ab625143d3e7e48ac1fe555cd8fbd46e04532fb2f052039c89", False),
        ("z" * 64, False),
        ("é" * 64, False),
        ("", False),
    ],
)
def test_it_compares_callback_hashes(given, ok):
    assert (
        keys.callback_hash_matches(
            callback_secret="tr_dev_secretkey123",
            internal_id="cmadrg9ir0005o27cexiglxck",
            given=given,
        )
        is ok
    )


@pytest.mark.parametrize(
    ("slug", "prefix"), [("dev", "tr_dev_"), ("staging", "tr_stg_"), ("prod", "tr_prod_")]
)
def test_it_generates_secret_keys_in_upstreams_shape(slug, prefix):
    secret = keys.generate_secret_key(slug)
    body = secret.removeprefix(prefix)
    assert secret.startswith(prefix)
    assert len(body) >= 32
    assert re.fullmatch(r"[A-Za-z0-9_-]+", body)
    assert keys.looks_like_secret_key(secret)


def test_it_never_generates_an_sk_key(monkeypatch):
    bodies = iter(["sk_" + "a" * 40, "b" * 43])
    monkeypatch.setattr(keys.secrets, "token_urlsafe", lambda _n: next(bodies))
    assert keys.generate_secret_key("dev") == "tr_dev_" + "b" * 43


def test_it_digests_keys_with_the_secret_key(settings):
    digest = keys.key_digest("tr_dev_abc")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert keys.key_digest("tr_dev_abc") == digest
    assert keys.key_digest("tr_dev_abd") != digest
    settings.SECRET_KEY = "another-secret-key-0123456789"
    assert keys.key_digest("tr_dev_abc") != digest


def test_it_encrypts_keys_at_rest(settings):
    ciphertext = keys.encrypt("tr_dev_secret")
    assert "tr_dev_secret" not in ciphertext
    assert keys.decrypt(ciphertext) == "tr_dev_secret"
    assert keys.decrypt("garbage") is None
    settings.SECRET_KEY = "another-secret-key-0123456789"
    assert keys.decrypt(ciphertext) is None


def test_it_generates_time_ordered_cuid_like_ids():
    first = keys.generate_token_id()
    time.sleep(0.002)
    second = keys.generate_token_id()
    for token_id in (first, second):
        assert re.fullmatch(r"c[0-9a-z]{24}", token_id)
    assert second > first
    assert len({keys.generate_token_id() for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("waitpoint_cmadrg9ir0005o27cexiglxck", "cmadrg9ir0005o27cexiglxck"),
        ("cmadrg9ir0005o27cexiglxck", "cmadrg9ir0005o27cexiglxck"),
        ("waitpoint_", None),
        ("", None),
        ("waitpoint_a_b", None),
        ("waitpoint_ABC", None),
        ("c" * 41, None),
        ("c-1", None),
        ("waitpoint_waitpoint_c1", None),
    ],
)
def test_it_parses_token_ids(value, expected):
    assert keys.parse_token_id(value) == expected


def test_it_shows_friendly_ids():
    assert keys.friendly_id("cabc") == "waitpoint_cabc"


def test_it_digests_idempotency_keys():
    assert keys.idempotency_digest("k" * 2048) == keys.idempotency_digest("k" * 2048)
    assert keys.idempotency_digest("a") != keys.idempotency_digest("b")
    assert len(keys.idempotency_digest("k" * 2048)) == 64
