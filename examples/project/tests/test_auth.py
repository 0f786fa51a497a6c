from __future__ import annotations

import pytest

from auth.tokens import InvalidToken, issue_token, verify_token

SECRET = b"example-secret"


def test_a_fresh_token_names_its_user() -> None:
    token = issue_token("ada", SECRET, now=1_000)
    assert verify_token(token, SECRET, now=1_060) == "ada"


def test_a_forged_token_is_rejected() -> None:
    token = issue_token("ada", SECRET, now=1_000).replace("ada", "eve", 1)
    with pytest.raises(InvalidToken, match="bad signature"):
        verify_token(token, SECRET, now=1_000)


def test_an_old_token_expires() -> None:
    token = issue_token("ada", SECRET, now=1_000)
    with pytest.raises(InvalidToken, match="expired"):
        verify_token(token, SECRET, now=1_000 + 3_601)


def test_a_malformed_token_is_rejected() -> None:
    with pytest.raises(InvalidToken, match="malformed"):
        verify_token("not-a-token", SECRET, now=0)


def test_user_names_cannot_hold_the_separator() -> None:
    with pytest.raises(ValueError, match="no ':'"):
        issue_token("a:b", SECRET, now=0)
