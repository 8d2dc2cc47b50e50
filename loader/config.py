"""Where the loader keeps local state, and how secrets are kept out of everything it prints.

`redact` is the one place secrets are removed from text: every line the CLI prints, every
report, log event and stored run option goes through it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote


def state_dir() -> Path:
    """The project-local state folder (embedded Postgres, demo library): `$LOADER_STATE_DIR`
    or `./.loader`. Created on first use."""
    path = Path(os.environ.get("LOADER_STATE_DIR") or ".loader").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


MASK = "***"

# `scheme://user:password@host`: the password may hold unencoded `/`, `?`, `#`, `:` or even
# `@`, so everything from the first `:` after the user up to the LAST `@` before the next
# whitespace or quote is taken as the password (over-masking beats leaking).
_URL_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s:@/'\"]*):"
    r"(?P<password>\S*)@(?=[^\s@]*(?:\s|$))"
)
# `password=...` as a URL query parameter or a keyword-DSN field (quoted or not), and the
# usual names keys travel under in URLs (`apikey`, `token`, `key`, `secret`, ...). An unquoted
# value is masked up to the next whitespace: a password may hold `&` (over-masking a URL's
# later parameters beats leaking the rest of a password).
_SECRET_NAMES = (
    r"[A-Za-z_]*(?:password|passwd|pwd|secret|token|apikey|api_key|api-key|key|passphrase)"
)
_KEY_VALUE = re.compile(
    rf"(?i)(?P<name>\b{_SECRET_NAMES})(?P<eq>\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|\S+)"
)
# Secret values known by value (keys, passwords from URLs, $PGPASSWORD): masked wherever they
# turn up, e.g. echoed back inside a server's error message.
_known: set[str] = set()
_SECRET_ENV = ("PGPASSWORD", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_KEY")
_MIN_KNOWN = 4  # shorter values would mask ordinary words


def remember_secret(value: str | None) -> None:
    """Mask `value` (and its percent-decoded form) in everything `redact` sees from now on."""
    if not value:
        return
    for form in {value, unquote(value)}:
        if len(form) >= _MIN_KNOWN:
            _known.add(form)


def remember_secrets_in(text: str | None) -> None:
    """Remember the passwords and keys written inside a URL or DSN."""
    if not text:
        return
    for match in _URL_USERINFO.finditer(text):
        remember_secret(match["password"])
    for match in _KEY_VALUE.finditer(text):
        remember_secret(match["value"].strip("'\""))


def _environment_secrets() -> list[str]:
    return [v for name in _SECRET_ENV if len(v := os.environ.get(name, "")) >= _MIN_KNOWN]


def redact(text: str) -> str:
    """`text` with every secret replaced by `***`: URL passwords, `password=`/`apikey=`/
    `token=`/`key=` values in queries and keyword DSNs, and secrets known by value."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _KEY_VALUE.sub(lambda m: f"{m['name']}{m['eq']}{MASK}", text)
    # Longest first, so a secret containing another is masked whole.
    for secret in sorted({*_known, *_environment_secrets()}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact_url(url: str) -> str:
    """A connection URL or DSN without its secrets (safe to print or store)."""
    return redact(url)


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


def redact_options(options: dict[str, object]) -> dict[str, object]:
    """Options as recorded in a run or a report: secrets dropped, URLs without passwords."""
    clean: dict[str, object] = {}
    for name, value in options.items():
        if _SECRET_OPTION.search(name):
            clean[name] = MASK if value else None
        else:
            clean[name] = redact_value(value)
    return clean
