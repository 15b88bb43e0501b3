"""Unit tests for chalicelib.auth: the JWT, its claims, the token's transport and Origin."""

from __future__ import annotations

import string
import time
from dataclasses import replace
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.auth import (
    Identity,
    authenticate,
    check_origin,
    extract_token,
    valid_id,
    verify_token,
)
from chalicelib.errors import AuthError
from chalicelib.settings import Settings
from local import testkit

SECRET = "unit-test-secret-0123456789abcdef"  # 33 bytes
SETTINGS = Settings.from_env({"JWT_SECRET": SECRET})
ID_CHARS = string.ascii_letters + string.digits + "_.@-"


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid Streamer claims; ``overrides`` replace or (with value ``...``) remove one."""
    now = int(time.time())
    base: dict[str, Any] = {"user_id": "u1", "tenant_id": "acme",
                            "permissions": ["read", "write"], "iat": now, "exp": now + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def multi(params: dict[str, str]) -> dict[str, list[str]]:
    """A single-value map as the multi-value map events.query_values/header_values give."""
    return {name: [value] for name, value in params.items()}


def token(payload: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=algorithm)


def refused(settings: Settings, tok: str) -> AuthError:
    with pytest.raises(AuthError) as info:
        verify_token(settings, tok)
    return info.value


# -- verify_token ------------------------------------------------------------


def test_valid_token_gives_identity() -> None:
    """A well-formed token verifies to the Identity carrying its claims."""
    now = int(time.time())
    tok = token(claims(iat=now, exp=now + 600, permissions=["read", "read", "admin"]))
    assert verify_token(SETTINGS, tok) == Identity(
        user_id="u1", tenant_id="acme", permissions=frozenset({"read", "admin"}),
        expires_at=now + 600, issued_at=now)


def test_make_token_is_accepted() -> None:
    """The testing kit's make_token produces a token the verifier accepts."""
    tok = testkit.make_token(SECRET, user_id="a.b@c-d_e", tenant_id="T1",
                             permissions=["read"])
    identity = verify_token(SETTINGS, tok)
    assert (identity.user_id, identity.tenant_id) == ("a.b@c-d_e", "T1")
    assert identity.permissions == frozenset({"read"})


def test_empty_permissions_accepted() -> None:
    """An empty permissions list is a valid (powerless) identity."""
    assert verify_token(SETTINGS, token(claims(permissions=[]))).permissions == frozenset()


def test_expired_token_is_401() -> None:
    """A token whose exp has passed is refused with 401 'token expired'."""
    err = refused(SETTINGS, testkit.make_token(SECRET, user_id="u", tenant_id="t",
                                               ttl_seconds=-10))
    assert err.status == 401
    assert "expired" in err.reason


def test_leeway_tolerates_recent_expiry() -> None:
    """JWT_LEEWAY_SECONDS lets a just-expired token through."""
    tok = token(claims(exp=int(time.time()) - 5))
    refused(SETTINGS, tok)
    assert verify_token(replace(SETTINGS, jwt_leeway_seconds=60), tok).user_id == "u1"


def test_token_issued_in_future_is_401() -> None:
    """An iat in the future is refused."""
    assert refused(SETTINGS, token(claims(iat=int(time.time()) + 3600))).status == 401


def test_bad_signature_is_401() -> None:
    """A token signed with another secret is refused with 401."""
    assert refused(SETTINGS, token(claims(), secret="another-secret-of-32-bytes-length")
                   ).status == 401


def test_tampered_payload_is_401() -> None:
    """Swapping the payload of a signed token breaks the signature."""
    good = token(claims())
    forged = token(claims(user_id="admin"), secret="x" * 40)
    header, _, signature = good.split(".")
    tampered = ".".join([header, forged.split(".")[1], signature])
    assert refused(SETTINGS, tampered).status == 401


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "...", "eyJhbGciOiJIUzI1NiJ9.e30"])
def test_malformed_token_is_401(garbage: str) -> None:
    """Anything that is not a JWS compact token is refused with 401."""
    assert refused(SETTINGS, garbage).status == 401


def test_alg_none_token_refused() -> None:
    """An unsigned token (alg 'none') is refused with 401."""
    unsigned = jwt.encode(claims(), "", algorithm="none")
    assert refused(SETTINGS, unsigned).status == 401


def test_algorithm_comes_from_configuration_not_token() -> None:
    """An HS512 token with the right secret is refused when only HS256 is configured."""
    long_secret = "k" * 64
    tok = token(claims(), secret=long_secret, algorithm="HS512")
    assert refused(replace(SETTINGS, jwt_secret=long_secret), tok).status == 401
    accepted = replace(SETTINGS, jwt_secret=long_secret, jwt_algorithms=("HS512",))
    assert verify_token(accepted, tok).user_id == "u1"


@pytest.mark.parametrize("claim", ["user_id", "tenant_id", "permissions", "exp", "iat"])
def test_each_required_claim_missing_is_401(claim: str) -> None:
    """A token lacking any one required claim is refused with 401."""
    assert refused(SETTINGS, token(claims(**{claim: ...}))).status == 401


@pytest.mark.parametrize("claim", ["user_id", "tenant_id", "permissions", "exp", "iat"])
def test_each_required_claim_null_is_401(claim: str) -> None:
    """A required claim present as null is refused with 401."""
    assert refused(SETTINGS, token(claims(**{claim: None}))).status == 401


@pytest.mark.parametrize("overrides", [
    {"user_id": 42},
    {"tenant_id": 7},
    {"user_id": ["u1"]},
    {"tenant_id": {"id": "acme"}},
    {"permissions": "read"},
    {"permissions": {"read": True}},
    {"permissions": ["read", 1]},
    {"permissions": ["read", None]},
    {"permissions": [""]},
    {"permissions": ["p" * 65]},
    {"permissions": [f"p{i}" for i in range(65)]},
    {"exp": "9999999999"},
    {"exp": "soon"},
    {"exp": [1]},
    {"exp": True},
    {"iat": "0"},
    {"iat": False},
    {"iat": {"t": 1}},
], ids=repr)
def test_wrongly_typed_claims_are_401(overrides: dict[str, Any]) -> None:
    """A required claim of the wrong type is refused with 401, never another exception."""
    assert refused(SETTINGS, token(claims(**overrides))).status == 401


@pytest.mark.parametrize("bad_id", ["a#b", "", "x" * 129, "a b", "ü", "a/b", "tenant\n"])
@pytest.mark.parametrize("claim", ["user_id", "tenant_id"])
def test_ids_outside_charset_are_401(claim: str, bad_id: str) -> None:
    """user_id/tenant_id outside 1-128 of [A-Za-z0-9_.@-] are refused with 401."""
    assert refused(SETTINGS, token(claims(**{claim: bad_id}))).status == 401


def test_id_of_128_characters_accepted() -> None:
    """The ID length limit is inclusive."""
    assert verify_token(SETTINGS, token(claims(user_id="u" * 128))).user_id == "u" * 128


def test_float_times_accepted_and_truncated() -> None:
    """Numeric (float) exp/iat are accepted and stored as integers."""
    now = time.time()
    identity = verify_token(SETTINGS, token(claims(iat=now - 1.5, exp=now + 100.7)))
    assert identity.expires_at == int(now + 100.7)
    assert isinstance(identity.issued_at, int)


@given(st.text(max_size=140))
def test_valid_id_accepts_exactly_the_charset(value: str) -> None:
    """valid_id is true exactly for 1-128 characters of [A-Za-z0-9_.@-]."""
    expected = 0 < len(value) <= 128 and all(c in ID_CHARS for c in value)
    assert valid_id(value) is expected


@given(st.text(alphabet=ID_CHARS, min_size=1, max_size=128))
def test_valid_id_accepts_every_charset_string(value: str) -> None:
    """Every 1-128 character string of the ID charset is valid."""
    assert valid_id(value)


@pytest.mark.parametrize("value", [None, 1, b"abc", ["a"]])
def test_valid_id_rejects_non_strings(value: object) -> None:
    """valid_id is false for anything but a string."""
    assert not valid_id(value)


# -- audience and issuer -----------------------------------------------------

AUD_ISS = replace(SETTINGS, jwt_audience="streamer", jwt_issuer="https://issuer.example")


def test_audience_and_issuer_accepted_when_matching() -> None:
    """With JWT_AUDIENCE/JWT_ISSUER set, matching aud/iss verify."""
    tok = token(claims(aud="streamer", iss="https://issuer.example"))
    assert verify_token(AUD_ISS, tok).user_id == "u1"


@pytest.mark.parametrize("overrides", [
    {"iss": "https://issuer.example"},
    {"aud": "streamer"},
    {"aud": "other", "iss": "https://issuer.example"},
    {"aud": "streamer", "iss": "https://evil.example"},
    {"aud": "streame", "iss": "https://issuer.example"},
    {"aud": "streamer", "iss": "https://issuer.exampl"},
    {"aud": "streamer", "iss": "https://issuer.example/"},
    {"aud": 1, "iss": "https://issuer.example"},
], ids=repr)
def test_audience_and_issuer_required_and_exact(overrides: dict[str, Any]) -> None:
    """When configured, a missing or different aud/iss is refused with 401."""
    assert refused(AUD_ISS, token(claims(**overrides))).status == 401


def test_audience_and_issuer_ignored_when_not_configured() -> None:
    """Without JWT_AUDIENCE/JWT_ISSUER, any aud/iss in the token is ignored."""
    tok = token(claims(aud="whatever", iss="anyone"))
    assert verify_token(SETTINGS, tok).user_id == "u1"


# -- extract_token -----------------------------------------------------------


def test_token_from_query() -> None:
    """The Authorization query parameter carries the token."""
    assert extract_token(multi({"Authorization": "tok"}), {}) == "tok"


@pytest.mark.parametrize("name", ["Authorization", "authorization", "AUTHORIZATION"])
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_token_from_header_case_insensitive(name: str, scheme: str) -> None:
    """'Authorization: Bearer <t>' works whatever the header name's and scheme's case."""
    assert extract_token({}, multi({name: f"{scheme} tok"})) == "tok"


def test_same_token_both_ways_accepted() -> None:
    """A token in both the query and the header is fine when they are equal."""
    both = extract_token(multi({"Authorization": "tok"}), multi({"authorization": "Bearer tok"}))
    assert both == "tok"


def test_differing_tokens_are_401() -> None:
    """Query and header tokens that differ are refused with 401."""
    with pytest.raises(AuthError) as info:
        extract_token(multi({"Authorization": "tok1"}), multi({"Authorization": "Bearer tok2"}))
    assert info.value.status == 401


@pytest.mark.parametrize("header", ["tok", "Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "",
                                    "Token tok"])
def test_header_without_bearer_is_401(header: str) -> None:
    """An Authorization header that is not 'Bearer <token>' is refused with 401."""
    with pytest.raises(AuthError) as info:
        extract_token({}, multi({"Authorization": header}))
    assert info.value.status == 401


@pytest.mark.parametrize(("query", "headers"), [
    ({}, {}),
    ({"Authorization": ""}, {}),
    ({"authorization": "tok"}, {}),
    ({"token": "tok"}, {"X-Authorization": "Bearer tok"}),
])
def test_missing_token_is_401(query: dict[str, str], headers: dict[str, str]) -> None:
    """No token in the Authorization query parameter or header is refused with 401."""
    with pytest.raises(AuthError) as info:
        extract_token(multi(query), multi(headers))
    assert info.value.status == 401


def test_oversized_token_is_401() -> None:
    """A token over 8192 characters is refused before any decoding."""
    with pytest.raises(AuthError) as info:
        extract_token(multi({"Authorization": "a" * 8193}), {})
    assert info.value.status == 401
    assert extract_token(multi({"Authorization": "a" * 8192}), {}) == "a" * 8192


# -- origin ------------------------------------------------------------------

ORIGINS = replace(SETTINGS, allowed_origins=frozenset({"https://app.example"}))


@pytest.mark.parametrize("name", ["Origin", "origin", "ORIGIN"])
def test_foreign_origin_is_403(name: str) -> None:
    """An Origin outside ALLOWED_ORIGINS is refused with 403, whatever its header case."""
    with pytest.raises(AuthError) as info:
        check_origin(ORIGINS, multi({name: "https://evil.example"}))
    assert info.value.status == 403


@pytest.mark.parametrize("origin", ["https://app.example.evil", "http://app.example",
                                    "https://app.example/", ""])
def test_origin_must_match_exactly(origin: str) -> None:
    """Near-miss origins are refused with 403."""
    with pytest.raises(AuthError) as info:
        check_origin(ORIGINS, multi({"Origin": origin}))
    assert info.value.status == 403


def test_allowed_origin_passes() -> None:
    """An Origin in ALLOWED_ORIGINS is accepted."""
    check_origin(ORIGINS, multi({"origin": "https://app.example"}))


def test_missing_origin_passes() -> None:
    """A handshake without Origin (non-browser client) is not affected by the list."""
    check_origin(ORIGINS, multi({"Host": "x"}))


def test_no_list_allows_any_origin() -> None:
    """Without ALLOWED_ORIGINS, any Origin is accepted."""
    check_origin(SETTINGS, multi({"Origin": "https://evil.example"}))


# -- authenticate ------------------------------------------------------------


def test_authenticate_accepts_query_token() -> None:
    """authenticate returns the identity for a valid query token and allowed origin."""
    tok = token(claims())
    identity = authenticate(ORIGINS, multi({"Authorization": tok}), multi({"Origin": "https://app.example"}))
    assert identity.tenant_id == "acme"


def test_authenticate_accepts_header_token() -> None:
    """authenticate takes the token from the Bearer header."""
    tok = token(claims())
    assert authenticate(SETTINGS, {}, multi({"authorization": f"Bearer {tok}"})).user_id == "u1"


def test_origin_checked_before_token() -> None:
    """A foreign Origin is 403 even when the token is missing."""
    with pytest.raises(AuthError) as info:
        authenticate(ORIGINS, {}, multi({"Origin": "https://evil.example"}))
    assert info.value.status == 403


def test_authenticate_refuses_bad_token_with_401() -> None:
    """authenticate turns an invalid token into 401."""
    with pytest.raises(AuthError) as info:
        authenticate(SETTINGS, multi({"Authorization": token(claims(), secret="z" * 32)}), {})
    assert info.value.status == 401


# -- no token text in errors ---------------------------------------------------


def _failures() -> list[tuple[str, dict[str, str], dict[str, str]]]:
    now = int(time.time())
    bad_sig = token(claims(), secret="z" * 32)
    expired = token(claims(exp=now - 100))
    bad_claim = token(claims(user_id="a#b"))
    no_claim = token(claims(permissions=...))
    garbage = "not-a-jwt-" + "q" * 30
    other = token(claims(user_id="u2"))
    return [
        (bad_sig, {"Authorization": bad_sig}, {}),
        (expired, {"Authorization": expired}, {}),
        (bad_claim, {}, {"Authorization": f"Bearer {bad_claim}"}),
        (no_claim, {"Authorization": no_claim}, {}),
        (garbage, {"Authorization": garbage}, {}),
        (other, {"Authorization": other}, {"Authorization": f"Bearer {bad_sig}"}),
        (garbage, {}, {"Authorization": f"Basic {garbage}"}),
    ]


@pytest.mark.parametrize(("tok", "query", "headers"), _failures())
def test_auth_errors_never_contain_the_token(tok: str, query: dict[str, str],
                                             headers: dict[str, str]) -> None:
    """A refused handshake's message and reason hold no part of the token."""
    with pytest.raises(AuthError) as info:
        authenticate(SETTINGS, multi(query), multi(headers))
    err = info.value
    pieces = [p for p in tok.split(".") if len(p) >= 8]
    for text in (str(err), err.reason, repr(err), repr(err.args)):
        for piece in pieces:
            assert piece not in text
    assert err.__cause__ is None


def test_audience_list_is_refused_even_if_it_holds_ours() -> None:
    """With JWT_AUDIENCE set, aud must be exactly that string, not a list containing it."""
    settings = replace(SETTINGS, jwt_audience="streamer")
    assert verify_token(settings, token(claims(aud="streamer"))).user_id == "u1"
    assert refused(settings, token(claims(aud=["streamer", "other"]))).status == 401


def test_other_scheme_header_is_ignored_beside_a_query_token() -> None:
    """A non-Bearer Authorization header (a proxy's Basic, say) does not spoil a query token."""
    tok = token(claims())
    basic = multi({"Authorization": "Basic dXNlcjpwdw=="})
    assert extract_token(multi({"Authorization": tok}), basic) == tok


def test_other_scheme_header_alone_is_401() -> None:
    """Without a query token, a non-Bearer Authorization header is refused."""
    with pytest.raises(AuthError) as info:
        extract_token({}, multi({"Authorization": "Basic dXNlcjpwdw=="}))
    assert info.value.status == 401


# -- ambiguity and ranges ----------------------------------------------------


@pytest.mark.parametrize(("query", "headers"), [
    ({"Authorization": ["garbage", "VALID"]}, {}),
    ({"Authorization": ["VALID", "VALID"]}, {}),
    ({"Authorization": ["VALID", "OTHER"]}, {}),
    ({}, {"Authorization": ["Bearer VALID", "Bearer OTHER"]}),
    ({}, {"Authorization": ["Bearer VALID"], "authorization": ["Bearer VALID"]}),
    ({"Authorization": ["VALID"]},
     {"Authorization": ["Bearer VALID"], "AUTHORIZATION": ["Basic dXNlcjpwdw=="]}),
])
def test_credentials_given_twice_are_401(query: dict[str, list[str]],
                                         headers: dict[str, list[str]]) -> None:
    """A repeated Authorization parameter, or Authorization headers differing only in
    case, are refused 401 even when one copy (or every copy) is a valid token."""
    valid, other = token(claims()), token(claims(user_id="u2"))

    def fill(values: dict[str, list[str]]) -> dict[str, list[str]]:
        return {k: [v.replace("VALID", valid).replace("OTHER", other) for v in vs]
                for k, vs in values.items()}

    with pytest.raises(AuthError) as info:
        authenticate(SETTINGS, fill(query), fill(headers))
    assert (info.value.status, info.value.reason.split(":")[0]) == (401, "ambiguous credentials")


@pytest.mark.parametrize("headers", [
    {"Origin": ["https://evil.example", "https://app.example"]},
    {"Origin": ["https://app.example", "https://app.example"]},
    {"Origin": ["https://evil.example"], "origin": ["https://app.example"]},
])
def test_origin_given_twice_is_403(headers: dict[str, list[str]]) -> None:
    """With ALLOWED_ORIGINS set, more than one Origin header is refused 403."""
    with pytest.raises(AuthError) as info:
        authenticate(ORIGINS, multi({"Authorization": token(claims())}), headers)
    assert info.value.status == 403


@pytest.mark.parametrize("overrides", [
    {"exp": 1e300}, {"exp": 10**40}, {"exp": 253_402_300_800},
    {"iat": -1}, {"iat": -1e300}, {"iat": 1e300},
])
def test_out_of_range_timestamps_are_401(overrides: dict[str, Any]) -> None:
    """exp or iat outside 0..9999-12-31 (no DynamoDB number, no real time) is 401."""
    err = refused(SETTINGS, token(claims(**overrides)))
    assert err.status == 401


def test_largest_timestamp_is_accepted() -> None:
    """exp at the last second of year 9999 is a valid, if long-lived, token."""
    assert verify_token(SETTINGS, token(claims(exp=253_402_300_799))).expires_at == (
        253_402_300_799)


def test_future_iat_within_leeway_is_accepted() -> None:
    """An iat ahead of the clock by less than JWT_LEEWAY_SECONDS is accepted (clock skew);
    beyond it, refused (as test_token_issued_in_future_is_401 shows)."""
    settings = replace(SETTINGS, jwt_leeway_seconds=60)
    assert verify_token(settings, token(claims(iat=int(time.time()) + 30))).user_id == "u1"
    assert refused(settings, token(claims(iat=int(time.time()) + 120))).status == 401
