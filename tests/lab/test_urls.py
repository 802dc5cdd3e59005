"""Storage URLs: a password with '@', ':' or '/' is read whole and never shown, not even in part."""

from __future__ import annotations

import pytest

from optimlab.lab.errors import UserError
from optimlab.lab.urls import connect_string, parse_url, password_of, scrub, show_url

RAW = "postgresql://tuner2:ab@cd:ef/gh@127.0.0.1:5432/db"
SECRET = "ab@cd:ef/gh"
#: every piece of the password a faulty masker could leave behind
FRAGMENTS = ("ab@", "cd:ef", "ef/gh", "/gh@", "cd%3A", "%40cd", "ab%40")


@pytest.mark.parametrize(
    "url",
    [RAW, "postgresql://tuner2:ab%40cd%3Aef%2Fgh@127.0.0.1:5432/db",
     "postgresql+psycopg2://tuner2:ab@cd:ef/gh@127.0.0.1:5432/db?sslmode=require"],
)
def test_a_password_with_at_colon_and_slash_is_read_whole_and_masked(url):
    parsed = parse_url(url)
    assert (parsed.username, parsed.password, parsed.host, parsed.port, parsed.database) == (
        "tuner2", SECRET, "127.0.0.1", 5432, "db")
    shown = show_url(url)
    assert shown.startswith(url.split("://")[0] + "://tuner2:***@127.0.0.1:5432/db")
    assert not any(f in shown for f in FRAGMENTS), shown
    assert password_of(url) == SECRET
    assert parse_url(connect_string(url)).password == SECRET  # what the driver gets


def test_messages_lose_the_password_and_every_url_its_credentials():
    message = f"could not connect to {RAW}: password {SECRET} (ab%40cd%3Aef%2Fgh) rejected"
    scrubbed = scrub(message, RAW)
    assert not any(f in scrubbed for f in FRAGMENTS), scrubbed
    assert "tuner2:***@127.0.0.1:5432/db" in scrubbed
    other = scrub("see postgresql://admin:x@y:z@db.example/prod for details")
    assert other == "see postgresql://admin:***@db.example/prod for details"


def test_an_unparsable_url_is_refused_without_its_password():
    with pytest.raises(UserError) as info:
        parse_url("postgresql://tuner2:ab@cd:ef/gh@127.0.0.1:notaport/db")
    assert not any(f in str(info.value) for f in FRAGMENTS)
    assert "tuner2:***@127.0.0.1:notaport/db" in str(info.value)


def test_sqlite_paths_are_kept_as_written():
    for url in ("sqlite:////tmp/a@b:c/tune.db", "sqlite:///runs/tune.db"):
        assert show_url(url) == connect_string(url) == url and password_of(url) is None
