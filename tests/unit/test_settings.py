"""Unit tests for chalicelib.settings: defaults, and every refusal names its key."""

from __future__ import annotations

import pytest

from chalicelib.errors import ConfigError
from chalicelib.settings import Settings

SECRET = "s" * 32


def env(**values: str) -> dict[str, str]:
    """An environment with a valid secret plus ``values``."""
    return {"JWT_SECRET": SECRET, **values}


def test_defaults_with_only_a_secret() -> None:
    """Only JWT_SECRET set gives the documented defaults."""
    settings = Settings.from_env({"JWT_SECRET": SECRET})
    assert settings == Settings(
        jwt_secret=SECRET,
        jwt_algorithms=("HS256",),
        jwt_audience=None,
        jwt_issuer=None,
        jwt_leeway_seconds=0,
        allowed_origins=frozenset(),
        table_prefix="streamer_",
        connection_ttl_seconds=86_400,
        max_subscriptions=100,
        subscription_shards=4,
        fanout_concurrency=16,
        send_max_attempts=3,
        send_backoff_seconds=0.05,
        result_ttl_seconds=86_400,
        dynamodb_endpoint_url=None,
        ws_endpoint_url=None,
        region=None,
    )


def test_empty_strings_mean_defaults() -> None:
    """An empty value for an optional key falls back to its default."""
    settings = Settings.from_env(env(MAX_SUBSCRIPTIONS="", SEND_BACKOFF_SECONDS="",
                                     JWT_AUDIENCE="", WS_ENDPOINT_URL=""))
    assert settings.max_subscriptions == 100
    assert settings.send_backoff_seconds == 0.05
    assert settings.jwt_audience is None
    assert settings.ws_endpoint_url is None


def test_every_key_is_read() -> None:
    """Each documented key lands in its field."""
    settings = Settings.from_env(env(
        JWT_SECRET="s" * 48,
        JWT_ALGORITHMS="HS256, HS384",
        JWT_AUDIENCE="streamer",
        JWT_ISSUER="https://issuer.example",
        JWT_LEEWAY_SECONDS="30",
        TABLE_PREFIX="prod_",
        CONNECTION_TTL_SECONDS="3600",
        MAX_SUBSCRIPTIONS="7",
        SUBSCRIPTION_SHARDS="9",
        FANOUT_CONCURRENCY="2",
        SEND_MAX_ATTEMPTS="5",
        SEND_BACKOFF_SECONDS="0.5",
        RESULT_TTL_SECONDS="120",
        DYNAMODB_ENDPOINT_URL="http://127.0.0.1:8000",
        AWS_REGION="eu-west-1",
    ))
    assert settings.jwt_algorithms == ("HS256", "HS384")
    assert settings.jwt_audience == "streamer"
    assert settings.jwt_issuer == "https://issuer.example"
    assert settings.jwt_leeway_seconds == 30
    assert settings.table_prefix == "prod_"
    assert settings.connection_ttl_seconds == 3600
    assert settings.max_subscriptions == 7
    assert settings.subscription_shards == 9
    assert settings.fanout_concurrency == 2
    assert settings.send_max_attempts == 5
    assert settings.send_backoff_seconds == 0.5
    assert settings.result_ttl_seconds == 120
    assert settings.dynamodb_endpoint_url == "http://127.0.0.1:8000"
    assert settings.region == "eu-west-1"


def test_region_falls_back_to_default_region() -> None:
    """AWS_DEFAULT_REGION is used when AWS_REGION is absent."""
    assert Settings.from_env(env(AWS_DEFAULT_REGION="ap-south-1")).region == "ap-south-1"


def test_missing_secret_refused_naming_the_key() -> None:
    """No JWT_SECRET is a ConfigError naming JWT_SECRET."""
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Settings.from_env({})


def test_empty_secret_refused_naming_the_key() -> None:
    """An empty JWT_SECRET is refused like a missing one."""
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Settings.from_env({"JWT_SECRET": ""})


def test_short_secret_refused_naming_the_key() -> None:
    """A 31-byte JWT_SECRET is refused with a ConfigError naming the key."""
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Settings.from_env({"JWT_SECRET": "s" * 31})


def test_secret_length_counts_bytes_not_characters() -> None:
    """16 two-byte characters are 32 bytes, so the secret is long enough."""
    assert Settings.from_env({"JWT_SECRET": "é" * 16}).jwt_secret == "é" * 16
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Settings.from_env({"JWT_SECRET": "é" * 15 + "x"})


@pytest.mark.parametrize("algorithms", ["none", "RS256", "HS256,none", "hs256", ",", "ES256"])
def test_non_hmac_algorithms_refused(algorithms: str) -> None:
    """JWT_ALGORITHMS outside HS256/HS384/HS512 (or empty) is refused naming the key."""
    with pytest.raises(ConfigError, match="JWT_ALGORITHMS"):
        Settings.from_env(env(JWT_ALGORITHMS=algorithms))


def test_all_hmac_algorithms_accepted() -> None:
    """All three HMAC algorithms can be configured together (with a long enough key)."""
    settings = Settings.from_env({"JWT_SECRET": "k" * 64,
                                  "JWT_ALGORITHMS": "HS512,HS384,HS256"})
    assert settings.jwt_algorithms == ("HS512", "HS384", "HS256")


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_secret_shorter_than_hash_refused(algorithm: str) -> None:
    """A secret shorter than the configured HMAC's hash output is refused naming JWT_SECRET."""
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Settings.from_env({"JWT_SECRET": "s" * 32, "JWT_ALGORITHMS": algorithm})


@pytest.mark.parametrize(("algorithms", "key_bytes"), [
    ("HS256", 32), ("HS384", 48), ("HS512", 64), ("HS256,HS384", 48), ("HS256,HS512", 64)])
def test_secret_must_cover_the_longest_configured_hash(algorithms: str,
                                                       key_bytes: int) -> None:
    """The secret must be as long as the longest configured hash: one byte less is refused."""
    assert Settings.from_env({"JWT_SECRET": "s" * key_bytes,
                              "JWT_ALGORITHMS": algorithms}).jwt_secret == "s" * key_bytes
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Settings.from_env({"JWT_SECRET": "s" * (key_bytes - 1), "JWT_ALGORITHMS": algorithms})


def test_allowed_origins_parsed_and_trimmed() -> None:
    """ALLOWED_ORIGINS is a comma list; blanks and whitespace are dropped."""
    settings = Settings.from_env(env(
        ALLOWED_ORIGINS=" https://a.example , https://b.example,,  "))
    assert settings.allowed_origins == frozenset({"https://a.example", "https://b.example"})


def test_blank_allowed_origins_means_no_list() -> None:
    """ALLOWED_ORIGINS of only separators is the empty set (no origin check)."""
    assert Settings.from_env(env(ALLOWED_ORIGINS=" , ")).allowed_origins == frozenset()


@pytest.mark.parametrize("url", ["https://x.example/dev/", "https://x.example/dev//"])
def test_ws_endpoint_trailing_slash_stripped(url: str) -> None:
    """WS_ENDPOINT_URL loses its trailing slashes."""
    assert Settings.from_env(env(WS_ENDPOINT_URL=url)).ws_endpoint_url == "https://x.example/dev"


def test_ws_endpoint_of_only_slashes_is_unset() -> None:
    """A WS_ENDPOINT_URL of just '/' is treated as unset."""
    assert Settings.from_env(env(WS_ENDPOINT_URL="/")).ws_endpoint_url is None


@pytest.mark.parametrize("key", [
    "JWT_LEEWAY_SECONDS", "CONNECTION_TTL_SECONDS", "MAX_SUBSCRIPTIONS",
    "SUBSCRIPTION_SHARDS", "FANOUT_CONCURRENCY", "SEND_MAX_ATTEMPTS", "RESULT_TTL_SECONDS",
])
@pytest.mark.parametrize("raw", ["abc", "1.5", "1e3", "ten"])
def test_non_integer_refused_naming_key(key: str, raw: str) -> None:
    """A non-integer for an integer key is a ConfigError naming the key."""
    with pytest.raises(ConfigError, match=key):
        Settings.from_env(env(**{key: raw}))


@pytest.mark.parametrize(("key", "raw"), [
    ("JWT_LEEWAY_SECONDS", "-1"),
    ("JWT_LEEWAY_SECONDS", "301"),
    ("CONNECTION_TTL_SECONDS", "59"),
    ("MAX_SUBSCRIPTIONS", "0"),
    ("MAX_SUBSCRIPTIONS", "10001"),
    ("SUBSCRIPTION_SHARDS", "0"),
    ("SUBSCRIPTION_SHARDS", "1001"),
    ("FANOUT_CONCURRENCY", "0"),
    ("FANOUT_CONCURRENCY", "257"),
    ("SEND_MAX_ATTEMPTS", "0"),
    ("SEND_MAX_ATTEMPTS", "11"),
    ("RESULT_TTL_SECONDS", "59"),
    ("SEND_BACKOFF_SECONDS", "-0.1"),
    ("SEND_BACKOFF_SECONDS", "5.01"),
    ("SEND_BACKOFF_SECONDS", "nan"),
    ("SEND_BACKOFF_SECONDS", "inf"),
    ("SEND_BACKOFF_SECONDS", "fast"),
])
def test_out_of_range_refused_naming_key(key: str, raw: str) -> None:
    """A value outside its key's range (or not a number) is a ConfigError naming the key."""
    with pytest.raises(ConfigError, match=key):
        Settings.from_env(env(**{key: raw}))


@pytest.mark.parametrize(("key", "raw", "field", "value"), [
    ("JWT_LEEWAY_SECONDS", "0", "jwt_leeway_seconds", 0),
    ("JWT_LEEWAY_SECONDS", "300", "jwt_leeway_seconds", 300),
    ("CONNECTION_TTL_SECONDS", "60", "connection_ttl_seconds", 60),
    ("MAX_SUBSCRIPTIONS", "10000", "max_subscriptions", 10_000),
    ("SUBSCRIPTION_SHARDS", "1", "subscription_shards", 1),
    ("FANOUT_CONCURRENCY", "256", "fanout_concurrency", 256),
    ("SEND_MAX_ATTEMPTS", "10", "send_max_attempts", 10),
    ("SEND_BACKOFF_SECONDS", "0", "send_backoff_seconds", 0.0),
    ("SEND_BACKOFF_SECONDS", "5", "send_backoff_seconds", 5.0),
])
def test_range_bounds_are_inclusive(key: str, raw: str, field: str, value: float) -> None:
    """The documented range ends are accepted."""
    assert getattr(Settings.from_env(env(**{key: raw})), field) == value


@pytest.mark.parametrize("prefix", ["x" * 201, "my prefix", "a/b", "t#"])
def test_bad_table_prefix_refused(prefix: str) -> None:
    """A TABLE_PREFIX over 200 characters or outside DynamoDB's charset is refused naming it."""
    with pytest.raises(ConfigError, match="TABLE_PREFIX"):
        Settings.from_env(env(TABLE_PREFIX=prefix))


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after start-up."""
    settings = Settings.from_env(env())
    with pytest.raises(AttributeError):
        settings.max_subscriptions = 5  # type: ignore[misc]


def test_empty_table_prefix_means_default() -> None:
    """An empty TABLE_PREFIX falls back to the default, like every other empty setting."""
    assert Settings.from_env(env(TABLE_PREFIX="")).table_prefix == "streamer_"
