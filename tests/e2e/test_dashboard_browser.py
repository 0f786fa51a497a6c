"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real server.

One server, one browser: log in with a token, start runs with the dashboard's form and watch them
finish on their page and the runs page without reloading, open the run routed to review, see that
its requester may not approve it, approve it as another reviewer and find the merge on the
repository's main branch, then read the metrics page's charts. Screenshots are kept under build/test-artifacts/dashboard/.
"""

from __future__ import annotations

import difflib
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from shipyard.web import ServeSettings, create_app
from shipyard.web.auth import Role
from tests.conftest import EXAMPLES, ROOT, needs_bwrap

sys.path.insert(0, str(EXAMPLES))
from scenario import GIT_ENV, PATCHES, make_repo

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "build" / "test-artifacts" / "dashboard"
RUN_TIMEOUT_MS = 240_000  # a run verifies its change in sandboxes: allow a slow shared machine

pytestmark = [
    pytest.mark.slow,
    needs_bwrap,
    pytest.mark.xdist_group("dashboard-browser"),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} is missing (`make setup` installs the Debian package chromium)",
    ),
]


@dataclass
class Server:
    url: str
    repo: Path
    secrets: dict[str, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, index_url: str) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("browser")
    repo = make_repo(root / "repo")
    port = _free_port()
    settings = ServeSettings(home=root / "home", port=port, scheduler=False)
    app = create_app(settings)
    app.state.registry.add_repo(name="shop", path=repo, by="admin", index_url=index_url)
    secrets = {
        name: app.state.tokens.create(name=name, role=Role.REVIEWER, created_by="admin")[1]
        for name in ("alice", "bob")
    }
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not uv.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start within a minute"
        time.sleep(0.05)
    try:
        yield Server(url=url, repo=repo, secrets=secrets)
    finally:
        uv.should_exit = True
        thread.join(timeout=60)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def docs_patch(repo: Path) -> str:
    before = (repo / "README.md").read_text(encoding="utf-8").splitlines(keepends=True)
    after = [*before, "\nReports: see `inventory.report`.\n"]
    return "".join(difflib.unified_diff(before, after, "a/README.md", "b/README.md"))


def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def log_in(page: object, server: Server, who: str) -> None:
    page.goto(f"{server.url}/runs")  # type: ignore[attr-defined]
    page.get_by_label("API token").fill(server.secrets[who])  # type: ignore[attr-defined]
    page.get_by_role("button", name="Log in").click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{server.url}/runs")  # type: ignore[attr-defined]


def start_run(page: object, server: Server, title: str, change_type: str, patch: str) -> str:
    """Start a ``submit`` run with the dashboard's form; the new run's id (its page is open)."""
    page.get_by_role("link", name="New run").click()  # type: ignore[attr-defined]
    page.get_by_label("Repository").select_option("shop")  # type: ignore[attr-defined]
    page.get_by_label("Blueprint").select_option("submit")  # type: ignore[attr-defined]
    page.get_by_label("Title").fill(title)  # type: ignore[attr-defined]
    page.get_by_label("Change type").select_option(change_type)  # type: ignore[attr-defined]
    page.get_by_label("Patch").fill(patch)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Start").click()  # type: ignore[attr-defined]
    page.wait_for_url(re.compile(r".*/runs/[0-9]{8}-.*"))  # type: ignore[attr-defined]
    return str(page.url.split("/runs/")[1].split("?")[0])  # type: ignore[attr-defined]


def test_watch_runs_finish_live_approve_a_review_and_read_the_metrics(
    server: Server, browser: object
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{server.url}/insights")
    assert "/login" in page.url  # a stranger is asked to log in first
    log_in(page, server, "alice")

    docs = start_run(page, server, "Document the report", "documentation", docs_patch(server.repo))
    expect(page.get_by_role("status")).to_contain_text("run started by alice")
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#run-status .status-merged")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    assert page.evaluate("window.notReloaded") is True  # the run's page followed it live
    feature = start_run(
        page, server, "Low-stock report", "feature",
        (PATCHES / "feature-low-stock.patch").read_text(encoding="utf-8"),
    )  # fmt: skip
    page.goto(f"{server.url}/runs")
    page.evaluate("window.notReloaded = true")

    rows = page.locator("#run-rows tr")
    expect(rows.filter(has_text="Document the report").locator(".status-merged")).to_be_visible(
        timeout=RUN_TIMEOUT_MS
    )
    expect(
        rows.filter(has_text="Low-stock report").locator(".status-awaiting_review")
    ).to_be_visible(timeout=RUN_TIMEOUT_MS)
    assert page.evaluate("window.notReloaded") is True  # the statuses came in live
    shot(page, "runs")

    page.get_by_role("link", name="Low-stock report").click()
    expect(page.get_by_role("heading", name="Decision")).to_be_visible()
    expect(page.locator("#self-review")).to_contain_text("You (alice) requested this run")
    expect(page.get_by_role("button", name="Approve and merge")).to_be_disabled()
    shot(page, "run-awaiting-review")

    page.get_by_role("button", name="Log out").click()
    log_in(page, server, "bob")
    page.goto(f"{server.url}/reviews")
    expect(page.get_by_role("link", name="Low-stock report")).to_be_visible()
    page.get_by_label("Comment").fill("Checked the report layout")
    page.get_by_role("button", name="Approve and merge").click()
    expect(page.locator("#run-status .status-merged")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_role("status")).to_contain_text("approved by bob")
    shot(page, "run-merged")

    log = _git_log(server.repo)
    assert f"Shipyard-Run: {feature}" in log
    assert f"Shipyard-Run: {docs}" in log
    assert "approved by bob" in log

    page.goto(f"{server.url}/insights")
    expect(page.locator("figure.chart[data-drawn='true']")).to_have_count(5)
    expect(page.locator("#chart-changes canvas")).to_have_count(1)
    expect(page.locator("#types-table")).to_contain_text("documentation")
    expect(page.locator("#types-table")).to_contain_text("feature")
    shot(page, "metrics")

    phone = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    mobile = phone.new_page()
    log_in(mobile, server, "bob")
    overflow = mobile.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0  # nothing wider than the phone's screen
    shot(mobile, "runs-phone")
    phone.close()
    context.close()


def _git_log(repo: Path) -> str:
    import subprocess

    git = shutil.which("git") or "git"
    done = subprocess.run(
        [git, "log", "--format=%B", "main"], cwd=repo, env=GIT_ENV, capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout
