"""How secrets are kept out of everything the loader prints.

`redact` is the one place secrets are removed from free text: every line the CLI prints, every
report, log event and stored run option goes through it. `redact_url` masks one URL (or
keyword DSN) and nothing else in it.

The rules, exactly:

1. URLs (`scheme://user:password@host...`): the password component is found by parsing, not
   by searching for its text, and only it is replaced:
   `postgresql://postgres:postgres@127.0.0.1:54322/postgres` reads
   `postgresql://postgres:***@127.0.0.1:54322/postgres`, whatever the password equals. The
   user runs from `://` to the first of `: @ / ? # ' "` (those are percent-encoded in a user
   name); after a `:` the password runs to the LAST `@` of the URL, so unencoded `@ : / ? #`
   in a password are masked with it. A URL ends at whitespace (a password with an unencoded
   space cannot be told from the text after it: percent-encode it, `%20`). The price of the
   last-`@` rule: an `@` in a later query value (`?application_name=me@x`) makes everything
   up to it count as the password (over-masked; the text after that `@` is shown as the host).
   A URL without a password, or with an empty one, is left as it is.
2. `name=value` secrets: `password=`, `apikey=`, `token=`, `key=`, `secret=` and names ending
   in them (`sslpassword=`, `access_token=`, ...), in URL queries and keyword DSNs. Only the
   value is replaced. A quoted value (`'...'`, `"..."`) is masked inside its quotes. In a URL
   query (the name follows `?` or `&`) the value ends at the next `&` or whitespace, so the
   `&` and the rest of the query are kept; elsewhere it ends at whitespace.
   Trailing punctuation, in free text only (`redact`; `redact_url` masks the whole value):
   when an unquoted value runs up to whitespace or the end of the text,
   - if the value is a secret known by value (rule 3) followed only by characters from
     `: , ; . ) ] } ' "`, exactly that secret is masked and those characters are kept
     (`?password=hunter2: password authentication failed` reads
     `?password=***: password authentication failed`);
   - otherwise (a value the loader was never given) its trailing run of those characters is
     kept; a value made of nothing but them keeps only its last character, and only when
     that is a closing `) ] } ' "` after something else (`'password=...'` reads
     `'password=***'`, `password=::` reads `password=***`). A password the loader never
     saw that itself ends in such characters shows them: that is the price of readable
     messages. Passwords and keys it was given are known, and masked whole.
3. Secrets known by value (the passwords and `password=` values of URLs and DSNs the loader
   was given, `--key`, `$PGPASSWORD`, `$SUPABASE_SERVICE_ROLE_KEY`, `$SUPABASE_KEY`; raw and
   percent-decoded; at least 4 characters) are masked wherever they appear, e.g. echoed in a
   server's error message, but only as whole tokens: not where a letter, digit or `_` comes
   right before a secret that starts with one, or right after a secret that ends with one. So
   a secret `postgres` leaves `postgresql` whole, and `hunter2` in `(hunter2).` reads
   `(***).`.

   Decision: a known secret that is also public text of a URL or keyword DSN the loader was
   given (equal to, or a whole token inside, its user name, host, port, database name or
   scheme word) is not masked by value. `postgresql://postgres:postgres@...` has the password
   `postgres`, which the same URL prints as its user and database name: that text is shown as
   the public part anyway, masking it everywhere would garble `user "postgres"` into
   `user "***"`, and, worse, would tell the reader which public word is the password. The
   password is still masked in its place in every URL (rule 1) and after every `password=`
   (rule 2); every other known secret is masked everywhere.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from dataclasses import dataclass
from urllib.parse import unquote

MASK = "***"

# `scheme://` and the rest of the URL, up to whitespace.
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>\S*)")
_USER = re.compile(r"[^:@/?#'\"]*")
_HOST_PATH = re.compile(r"(?P<hostport>[^/?#]*)(?P<path>[^?#]*)")
_PORT = re.compile(r"(?P<host>.*?):(?P<port>[0-9]*)")

# `password=...` as a URL query parameter or a keyword-DSN field (quoted or not), and the
# usual names keys travel under in URLs (`apikey`, `token`, `key`, `secret`, ...).
_SECRET_NAMES = (
    r"[A-Za-z_]*(?:password|passwd|pwd|secret|token|apikey|api_key|api-key|key|passphrase)"
)
_SECRET_NAME = re.compile(rf"(?i)\b(?P<name>{_SECRET_NAMES})\s*=\s*")
_QUOTED = {
    "'": re.compile(r"'(?P<inner>(?:[^'\\]|\\.)*)(?P<close>'?)"),
    '"': re.compile(r"\"(?P<inner>(?:[^\"\\]|\\.)*)(?P<close>\"?)"),
}
_QUERY_VALUE = re.compile(r"[^\s&]*")
_DSN_VALUE = re.compile(r"\S*")
# Kept after a masked value in free text (rule 2).
_TRAILING = ":,;.)]}'\""
_CLOSING = ")]}'\""
# The public fields of a keyword DSN (`host=... user=... dbname=...`).
_DSN_PUBLIC = re.compile(
    r"(?i)\b(?:host|hostaddr|port|user|dbname)\s*=\s*(?:'(?P<quoted>(?:[^'\\]|\\.)*)'|(?P<bare>\S+))"
)
_WORD = re.compile(r"\w")

# Secrets known by value, and the public text of the URLs and DSNs they came with.
_known: set[str] = set()
_public: set[str] = set()
_SECRET_ENV = ("PGPASSWORD", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_KEY")
_MIN_KNOWN = 4  # shorter values would mask ordinary words


@dataclass(frozen=True, slots=True)
class _Url:
    scheme: str
    user: str | None
    password: tuple[int, int] | None  # where the password is, in the text parsed
    host: str
    port: str
    path: str


def _parse_url(match: re.Match[str]) -> _Url:
    """The parts of the URL `_URL` matched (rule 1)."""
    rest, base = match["rest"], match.start("rest")
    user, password, host_start = None, None, 0
    end = _USER.match(rest).end()  # type: ignore[union-attr]  # (matches the empty string)
    if rest[end : end + 1] == "@":
        user, host_start = rest[:end], end + 1
    elif rest[end : end + 1] == ":" and (at := rest.rfind("@")) > end:
        user, password, host_start = rest[:end], (base + end + 1, base + at), at + 1
    parts = _HOST_PATH.match(rest, host_start)
    hostport, path = parts["hostport"], parts["path"]  # type: ignore[index]
    host, port = hostport, ""
    if hostport.startswith("[") and "]" in hostport:  # IPv6: [::1]:5432
        close = hostport.index("]") + 1
        host, port = hostport[:close], hostport[close:].removeprefix(":")
    elif port_match := _PORT.fullmatch(hostport):
        host, port = port_match["host"], port_match["port"]
    return _Url(match["scheme"], user, password, host, port, path)


def _mask_urls(text: str) -> str:
    """Rule 1: every URL's password replaced by `***`, nothing else touched."""
    out, pos = [], 0
    for match in _URL.finditer(text):
        span = _parse_url(match).password
        if span and span[1] > span[0]:
            out += [text[pos : span[0]], MASK]
            pos = span[1]
    return "".join([*out, text[pos:]])


def _key_values(text: str) -> list[tuple[int, int, str | None, str, bool]]:
    """Every secret `name=value` field: (value start, value end, its quotes or None, the value
    text, whether it runs to whitespace or the end of the text)."""
    found, pos = [], 0
    while match := _SECRET_NAME.search(text, pos):
        start = match.end()
        quote = text[start : start + 1]
        if quote in _QUOTED:
            quoted = _QUOTED[quote].match(text, start)
            assert quoted is not None  # (it matches any opening quote)
            end = quoted.end()
            found.append((start, end, quote + quoted["close"], quoted["inner"], False))
        else:
            in_query = text[match.start() - 1 : match.start()] in ("?", "&")
            stop = _QUERY_VALUE if in_query else _DSN_VALUE
            end = stop.match(text, start).end()  # type: ignore[union-attr]
            at_space = end == len(text) or text[end].isspace()
            found.append((start, end, None, text[start:end], at_space))
        pos = max(end, match.end())
    return found


def _kept_tail(value: str, known: list[str]) -> str:
    """Rule 2's trailing punctuation: what stays after `***` for an unquoted value."""
    for secret in known:  # longest first
        if value.startswith(secret) and all(c in _TRAILING for c in value[len(secret) :]):
            return value[len(secret) :]
    body = value.rstrip(_TRAILING)
    if body:
        return value[len(body) :]
    # Nothing but punctuation (`password=...'`): only a closing quote or bracket stays.
    return value[-1] if len(value) > 1 and value[-1] in _CLOSING else ""


def _mask_key_values(text: str, prose: bool) -> str:
    """Rule 2: the value of every secret `name=` field replaced by `***`."""
    fields = _key_values(text)
    if not fields:
        return text
    known = sorted(_secrets(), key=len, reverse=True) if prose else []
    out, pos = [], 0
    for start, end, quotes, value, at_space in fields:
        if not value:
            continue
        if quotes is not None:
            masked = f"{quotes[0]}{MASK}{quotes[1:]}"
        else:
            masked = MASK + (_kept_tail(value, known) if prose and at_space else "")
        out += [text[pos:start], masked]
        pos = end
    return "".join([*out, text[pos:]])


def _bounded(secret: str) -> str:
    """A pattern of `secret` as a whole token (rule 3)."""
    left = r"(?<!\w)" if _WORD.match(secret[0]) else ""
    right = r"(?!\w)" if _WORD.match(secret[-1]) else ""
    return f"{left}{re.escape(secret)}{right}"


@functools.lru_cache(maxsize=32)
def _known_pattern(secrets: frozenset[str], public: frozenset[str]) -> re.Pattern[str] | None:
    """One pattern for every known secret that is not public text (rule 3), longest first."""
    masked = [s for s in secrets if not any(re.search(_bounded(s), text) for text in public)]
    if not masked:
        return None
    return re.compile("|".join(_bounded(s) for s in sorted(masked, key=len, reverse=True)))


def _secrets() -> set[str]:
    env = (os.environ.get(name, "") for name in _SECRET_ENV)
    return {*_known, *(value for value in env if len(value) >= _MIN_KNOWN)}


def _mask_known(text: str) -> str:
    """Rule 3: known secrets replaced by `***` where they stand as whole tokens."""
    secrets = _secrets()
    if not secrets:
        return text
    pattern = _known_pattern(frozenset(secrets), frozenset(_public))
    return pattern.sub(MASK, text) if pattern else text


def remember_secret(value: str | None) -> None:
    """Mask `value` (and its percent-decoded form) in everything `redact` sees from now on."""
    if not value:
        return
    for form in {value, unquote(value)}:
        if len(form) >= _MIN_KNOWN:
            _known.add(form)


def _remember_public(value: str) -> None:
    for form in {value, unquote(value)}:
        if form:
            _public.add(form)


def remember_secrets_in(text: str | None) -> None:
    """Remember the passwords and keys written inside a URL or DSN, and its public parts
    (user, host, port, database name, scheme word: see the module's decision)."""
    if not text:
        return
    for match in _URL.finditer(text):
        url = _parse_url(match)
        for public in (url.scheme, url.user or "", url.host, url.port, url.path.lstrip("/")):
            _remember_public(public)
        if url.password:
            remember_secret(text[url.password[0] : url.password[1]])
    for match in _DSN_PUBLIC.finditer(text):
        _remember_public(match["quoted"] or match["bare"] or "")
    for _start, _end, _quotes, value, _at_space in _key_values(text):
        remember_secret(value)


def redact(text: str) -> str:
    """`text` with every secret replaced by `***`: URL passwords, `password=`/`apikey=`/
    `token=`/`key=`/`secret=` values in queries and keyword DSNs, and secrets known by value
    (the rules are in the module's docstring)."""
    return _mask_known(_mask_key_values(_mask_urls(text), prose=True))


def redact_url(url: str) -> str:
    """A connection URL or keyword DSN with exactly its password (and `password=`-like values)
    replaced by `***`: safe to print or store."""
    return _mask_key_values(_mask_urls(url), prose=False)


def redact_value(value: object) -> object:
    """`redact` applied to every string inside a JSON-like value (reports, log events)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


_SECRET_OPTION = re.compile(r"(key|password|secret|token)", re.IGNORECASE)


# Field metadata of an option stored with a run and shown in its reports (`recorded_options`):
# `field(default=..., metadata=RECORDED)`, so the option says it, in one place.
RECORDED = {"recorded": True}


def recorded_options(*options: object) -> dict[str, object]:
    """The fields marked RECORDED of each options dataclass, in order, secrets masked."""
    return redact_options({
        f.name: getattr(opts, f.name)
        for opts in options
        for f in dataclasses.fields(opts)  # type: ignore[arg-type]
        if f.metadata.get("recorded")
    })  # fmt: skip


def redact_options(options: dict[str, object]) -> dict[str, object]:
    """Options as recorded in a run or a report: secrets dropped, URLs without passwords."""
    clean: dict[str, object] = {}
    for name, value in options.items():
        if _SECRET_OPTION.search(name):
            clean[name] = MASK if value else None
        else:
            clean[name] = redact_value(value)
    return clean
