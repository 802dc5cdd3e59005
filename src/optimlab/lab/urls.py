"""Storage URLs: parsed with SQLAlchemy's ``make_url``, shown only through its password masking.

A password may hold the characters that delimit a URL (``@``, ``:``, ``/``). Written
percent-encoded (``ab%40cd``) SQLAlchemy reads it as it is; written raw, SQLAlchemy 2.x ends the
password at the first ``@`` and then reads the rest of it as the host (``tuner2:ab@cd:ef/gh@h``
would show ``tuner2:***@cd:ef/gh@h``), or fails on a "port". optimlab therefore reads the
credentials up to the **last** ``@`` after ``://`` (as ``urllib.parse`` does), and from the first
``:`` in them on as the password, and percent-encodes them before ``make_url`` sees them. A
database name or query holding a raw ``@`` would then be masked as part of the password: shown
too little, never too much.

Nothing here prints a password: :func:`show_url` renders with
``render_as_string(hide_password=True)`` and :func:`scrub` removes the password, in its raw and
encoded forms, and any URL's credentials from a message (a driver's error may quote either).
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus, unquote

from .errors import UserError

#: a URL inside a message: scheme, ``://``, then everything up to white space
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://\S+")


def _is_file_url(text: str) -> bool:
    return text.partition("://")[0].lower().startswith("sqlite")


def split_url(text: str) -> tuple[str, str | None, str | None, str]:
    """``(scheme, username, password, rest)`` of ``text``; the credentials end at the last ``@``.

    ``username`` and ``password`` are None when absent and are returned as written (not
    decoded).
    """
    scheme, sep, rest = text.partition("://")
    if not sep:
        return "", None, None, text
    if _is_file_url(text):  # a file path: no credentials, its '@' and ':' are its own
        return scheme, None, None, rest
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return scheme, None, None, rest
    user, colon, password = userinfo.partition(":")
    return scheme, user, password if colon else None, host


def normalized(text: str) -> str:
    """``text`` with its credentials percent-encoded, so that ``make_url`` reads them whole."""
    scheme, user, password, host = split_url(text)
    if user is None:
        return text
    userinfo = quote(unquote(user), safe="")
    if password is not None:
        userinfo += ":" + quote(unquote(password), safe="")
    return f"{scheme}://{userinfo}@{host}"


def _masked_text(text: str) -> str:
    """``text`` (one URL) with its password replaced by ``***``, without parsing it further."""
    scheme, user, password, host = split_url(text)
    if password is None:
        return text
    return f"{scheme}://{user}:***@{host}"


def parse_url(text: str):
    """The ``sqlalchemy.engine.URL`` of ``text`` (credentials read as :func:`split_url` does).

    Raises:
        UserError: SQLAlchemy cannot parse it; the message shows the URL without its password.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(normalized(text))
    except (ArgumentError, ValueError) as e:
        reason = scrub(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__, text)
        raise UserError(f"Invalid storage URL {_masked_text(text)!r} ({reason})") from None


def password_of(text: str) -> str | None:
    """The decoded password of ``text``, or None."""
    password = split_url(text)[2]
    return None if password is None else unquote(password)


def show_url(text: str) -> str:
    """``text`` as SQLAlchemy renders it with ``hide_password=True`` (``postgresql://u:***@h/db``).

    A URL SQLAlchemy cannot parse is shown with everything between the first ``:`` of its
    credentials and their last ``@`` masked.
    """
    if _is_file_url(text):
        return text
    try:
        return parse_url(text).render_as_string(hide_password=True)
    except UserError:
        return _masked_text(text)


def connect_string(text: str) -> str:
    """The URL to connect with: :func:`normalized` through SQLAlchemy (password included)."""
    if _is_file_url(text):
        return text  # SQLAlchemy would percent-encode the path's '@' and ':'
    return parse_url(text).render_as_string(hide_password=False)


def scrub(message: str, url: str | None = None) -> str:
    """``message`` without ``url``'s password (raw, decoded and encoded forms) and with every
    URL in it shown without its password."""
    secrets: set[str] = set()
    if url:
        raw = split_url(url)[2]
        if raw:
            decoded = unquote(raw)
            secrets = {raw, decoded, quote(decoded, safe=""), quote(decoded), quote_plus(decoded)}
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        message = message.replace(secret, "***")
    return _URL_IN_TEXT.sub(lambda m: _masked_text(m.group(0)), message)
