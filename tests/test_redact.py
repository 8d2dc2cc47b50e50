"""Exact masking (issue 20, item 3): a URL's password is replaced in its place and nowhere
else, whatever it equals; messages keep their punctuation; known secrets are masked as whole
tokens only, and never where they are the public part of the URL they came with."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock
from urllib.parse import quote, unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader import redact as redact_module
from loader.redact import MASK, redact, redact_url, remember_secret, remember_secrets_in

TAIL = ": password authentication failed"
SUPABASE_LOCAL = "postgresql://postgres:postgres@127.0.0.1:54322/postgres"


@contextmanager
def fresh() -> Iterator[None]:
    """Nothing remembered and no secret in the environment (all restored afterwards)."""
    with (
        mock.patch.dict(os.environ),
        mock.patch.object(redact_module, "_known", set()),
        mock.patch.object(redact_module, "_public", set()),
    ):
        for name in redact_module._SECRET_ENV:
            os.environ.pop(name, None)
        yield


# -- the three reported cases --------------------------------------------------------------


def test_supabase_local_url_masks_only_the_password() -> None:
    with fresh():
        remember_secrets_in(SUPABASE_LOCAL)
        assert redact_url(SUPABASE_LOCAL) == "postgresql://postgres:***@127.0.0.1:54322/postgres"
        message = f'cannot connect to {SUPABASE_LOCAL}: role "postgres" does not exist'
        assert redact(message) == (
            'cannot connect to postgresql://postgres:***@127.0.0.1:54322/postgres: role "postgres"'
            " does not exist"
        )


def test_pgpassword_equal_to_the_user_does_not_garble_the_url() -> None:
    with fresh():
        os.environ["PGPASSWORD"] = "postgres"
        remember_secret("postgres")
        url = "postgresql://postgres@127.0.0.1:54322/postgres"
        remember_secrets_in(url)
        assert redact(f"database: {url}") == f"database: {url}"
        assert redact("password=postgres") == "password=***"


def test_query_password_keeps_the_colon_after_it() -> None:
    url = "postgresql://app@db.example.com/prod?sslmode=require&password=secret"
    message = f"cannot connect to {url}{TAIL}"
    expected = (
        "cannot connect to postgresql://app@db.example.com/prod?sslmode=require&password=***" + TAIL
    )
    with fresh():
        assert redact(message) == expected  # a value never seen: `:` kept as punctuation
        remember_secrets_in(url)
        assert redact(message) == expected  # a known value: exactly it is masked
        assert redact_url(url) == url.replace("=secret", "=***")


def test_hint_keeps_its_closing_quote() -> None:
    with fresh():
        assert redact('hint: "use password=hunter2"') == 'hint: "use password=***"'
        remember_secret("hunter2")
        assert redact('hint: "use hunter2"') == 'hint: "use ***"'


# -- the rules around them -----------------------------------------------------------------


def test_known_secret_is_masked_as_whole_tokens_only() -> None:
    with fresh():
        remember_secrets_in("postgresql://app:postgres@db.example.com/mydb")
        assert redact("postgresql, postgres.") == "postgresql, ***."
        assert redact("(postgres): 'postgres'; postgres_x") == "(***): '***'; postgres_x"


def test_known_secret_ending_in_punctuation_is_masked_whole() -> None:
    with fresh():
        remember_secret("hunter2:")
        assert redact("password=hunter2:: failed") == "password=***: failed"
        assert redact("password=other: failed") == "password=***: failed"
        assert redact("password=::") == "password=***"  # nothing left to mask: all of it
        assert redact("such as 'host=... password=...' fail") == (
            "such as 'host=... password=***' fail"  # a placeholder keeps its closing quote
        )


def test_query_value_ends_at_ampersand() -> None:
    url = "postgresql://u:p%40ss@h:5432/db?password=a%26b&sslmode=require"
    assert redact_url(url) == "postgresql://u:***@h:5432/db?password=***&sslmode=require"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_url("postgresql://u:@h/db") == "postgresql://u:@h/db"  # empty: no password


def test_quoted_dsn_value_keeps_its_quotes() -> None:
    with fresh():
        dsn = "host=h user=u password='a b' dbname=d"
        assert redact_url(dsn) == "host=h user=u password='***' dbname=d"
        assert redact(f"bad DSN {dsn}.") == "bad DSN host=h user=u password='***' dbname=d."


# -- properties ----------------------------------------------------------------------------

NAME = st.text(
    alphabet=st.one_of(st.characters(categories=("L", "Nd")), st.sampled_from("._-")),
    min_size=1,
    max_size=10,
)
PRINTABLE = st.text(
    alphabet=st.one_of(
        st.sampled_from("@:/?#%&=' \"*+"),
        st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")),
    ),
    min_size=1,
    max_size=16,
).filter(str.isprintable)
LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
HOST = st.one_of(
    st.sampled_from(
        ["127.0.0.1", "localhost", "[::1]", "db.example.com", "aws-0.pooler.supabase.com"]
    ),
    st.lists(LABEL, min_size=1, max_size=3).map(".".join),
)


@st.composite
def connection_urls(draw: st.DrawFn) -> tuple[str, str, str, list[str]]:
    """(URL, the URL with `***` for its password, the password, the public parts' text)."""
    encoded = draw(st.booleans())
    scheme = draw(st.sampled_from(["postgresql", "postgres", "http", "https"]))
    user = draw(PRINTABLE if encoded else NAME)
    host = draw(HOST)
    port = draw(st.none() | st.integers(0, 65535).map(str))
    db = draw(st.none() | (PRINTABLE if encoded else NAME))
    start = draw(st.integers(0, len(host) - 1))
    piece = host[start : draw(st.integers(start + 1, len(host)))]
    password = draw(
        st.one_of(
            PRINTABLE if encoded else PRINTABLE.filter(lambda s: not any(c.isspace() for c in s)),
            st.sampled_from([x for x in (user, db, scheme, "postgresql", piece, port) if x]),
        )
    )
    query = draw(st.sampled_from(["", "?sslmode=require", "?sslmode=require&application_name=x"]))

    def text(value: str) -> str:
        return quote(value, safe="") if encoded else value

    hostport = host if port is None else f"{host}:{port}"
    tail = ("" if db is None else f"/{text(db)}") + query
    url = f"{scheme}://{text(user)}:{text(password)}@{hostport}{tail}"
    masked = f"{scheme}://{text(user)}:{MASK}@{hostport}{tail}"
    return url, masked, password, [text(password), unquote(text(password))]


@pytest.mark.slow  # ~3 s: 600 examples
@settings(max_examples=600, deadline=None)
@given(case=connection_urls())
def test_redact_url_masks_exactly_the_password(case: tuple[str, str, str, list[str]]) -> None:
    url, masked, _password, _forms = case
    with fresh():
        assert redact_url(url) == masked
        remember_secrets_in(url)  # known secrets change nothing in redact_url
        assert redact_url(url) == masked


def overlaps_tail(text: str, form: str) -> bool:
    """Whether `form` occurs in `text` reaching into its last `len(TAIL)` characters."""
    start = text.find(form)
    while start != -1:
        if start + len(form) > len(text) - len(TAIL):
            return True
        start = text.find(form, start + 1)
    return False


def assert_shown_safely(shown: str, expected: str, forms: list[str]) -> None:
    """The secret's forms are gone unless the expected text itself holds them; the tail is
    intact unless a form is part of it; with no form in the expected text, exactly it."""
    for form in forms:
        if form not in expected:  # (a password that is public text cannot vanish from it)
            assert form not in shown
    if not any(overlaps_tail(expected, form) for form in forms):
        assert shown.endswith(TAIL)
    if not any(form in expected for form in forms):
        assert shown == expected


@pytest.mark.slow  # ~3 s: 600 examples
@settings(max_examples=600, deadline=None)
@given(case=connection_urls())
def test_redact_message_never_shows_the_password(case: tuple[str, str, str, list[str]]) -> None:
    url, masked, password, forms = case
    message, expected = f"cannot connect to {url}{TAIL}", f"cannot connect to {masked}{TAIL}"
    with fresh():
        assert redact(message) == expected  # nothing known: the URL's password only
        remember_secrets_in(url)  # as the CLI does with --database-url
        shown = redact(message)
    assert_shown_safely(shown, expected, [password, *forms])


@settings(max_examples=300, deadline=None)
@given(value=PRINTABLE, host=HOST)
def test_query_password_is_masked_and_the_rest_kept(value: str, host: str) -> None:
    url = f"postgresql://app@{host}/db?password={quote(value, safe='')}&sslmode=require"
    masked = f"postgresql://app@{host}/db?password=***&sslmode=require"
    message, expected = f"cannot connect to {url}{TAIL}", f"cannot connect to {masked}{TAIL}"
    with fresh():
        assert redact_url(url) == masked
        assert redact(message) == expected
        remember_secrets_in(url)
        assert redact_url(url) == masked
        shown = redact(message)
    assert_shown_safely(shown, expected, [value, quote(value, safe="")])


@pytest.mark.parametrize("secret", ["hunter2", "p@ss:w/rd", "sb_secret_abc"])
@pytest.mark.parametrize(
    "around",
    ['hint: "use {}"', "key {}: refused", "({})", "{}, {}; {}.", "'{}'"],
)
def test_known_secret_in_prose_keeps_punctuation(secret: str, around: str) -> None:
    with fresh():
        remember_secret(secret)
        assert redact(around.format(secret, secret, secret)) == around.format(MASK, MASK, MASK)
