"""Secrets stay on the host: credentials are masked in everything the store records and reports show."""

from __future__ import annotations

from pathlib import Path

from shipyard.delivery.report import render_report
from shipyard.model import Task
from shipyard.redaction import MASK, redact, redact_text
from shipyard.store import Store

GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
OPENAI = "sk-proj-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2"
AWS = "AKIA" + "ABCDEFGHIJKLMNOP"


def test_known_credential_shapes_are_masked() -> None:
    text = (
        f"push to https://bot:{GITHUB}@github.com/o/r, key {OPENAI}, aws {AWS}, "
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345"
    )
    out = redact_text(text)
    for secret in (GITHUB, OPENAI, AWS, "abcdefghijklmnopqrstuvwxyz012345", "bot:"):
        assert secret not in out
    assert "github.com/o/r" in out


def test_private_keys_and_secret_named_fields_are_masked_whole() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----"
    data = {
        "output": f"leaked\n{key}\nafter",
        "api_key": "plain-looking",
        "nested": [{"password": "pw"}],
    }
    out = redact(data)
    assert "b3BlbnNzaC1rZXk" not in str(out)
    assert out["api_key"] == MASK
    assert out["nested"][0]["password"] == MASK
    assert out["output"].startswith("leaked\n")
    assert out["output"].endswith("\nafter")
    assert redact({"tokens_used": 1200, "auth_token": "x"}) == {
        "tokens_used": 1200,
        "auth_token": MASK,
    }


def test_shipyard_api_tokens_are_masked_without_a_bearer_prefix() -> None:
    import secrets

    token = "shy_" + secrets.token_urlsafe(32)
    out = redact_text(f"curl -H 'X: {token}' and {token}.")
    assert token not in out
    assert token[4:] not in out


def test_ordinary_text_is_untouched() -> None:
    text = "tests.test_pricing::test_price_label_in_euros failed: assert '€1.234,50' == '€1,234.50'"
    assert redact_text(text) == text


def test_store_never_records_a_secret_and_reports_cannot_show_one(tmp_path: Path) -> None:
    store = Store.open(home=tmp_path)
    run_id = store.create_run(
        Task(
            blueprint="submit",
            repo="/r",
            title=f"use token {GITHUB}",
            params={"index_url": f"https://u:{OPENAI}@idx/simple/"},
        )
    )
    recorded = store.append(
        run_id, "gate.finished", {"gate": "tests", "facts": {"output_tail": f"env: AWS={AWS}"}}
    )
    assert AWS not in str(recorded.data)
    events = store.events(run_id)
    everything = (
        str([e.data for e in events])
        + str(store.state(run_id).task)
        + render_report(run_id, events)
    )
    for secret in (GITHUB, OPENAI, AWS):
        assert secret not in everything
    listed = store.list_runs()[0]
    assert GITHUB not in str(listed.task)
    store.close()
