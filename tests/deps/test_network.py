"""Reaching an index over HTTPS signed by a private CA (a TLS-intercepting proxy's), and proxies.

A real local index served over TLS with a certificate from a CA minted here: without
``SSL_CERT_FILE`` the index client refuses it with a message naming the variable; with it, the
index client and pip both work.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shipyard.deps.index import PackageIndex
from shipyard.deps.localindex import _server
from shipyard.deps.network import PROXY_VARIABLES, ssl_context
from shipyard.deps.wheelhouse import download
from shipyard.errors import PackageIndexError

from .conftest import make_wheel, static_server


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool
) -> x509.Certificate:  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False, data_encipherment=False,
                          key_agreement=False, encipher_only=False, decipher_only=False),
            critical=True,
        )  # fmt: skip
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        assert issuer is not None
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture(scope="module")
def https_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real local index over HTTPS: its URL, and the PEM file of the CA that signed it."""
    root = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("shipyard test CA", ca_key, None, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert("127.0.0.1", key, ca, ca_key, ca=False)
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (root / "server.pem").write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    make_wheel(root / "dists", "alpha", "1.0.0")
    make_wheel(root / "dists", "alpha", "1.1.0")
    server = _server(root / "dists", "127.0.0.1", 0)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(root / "server.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/simple/", root / "ca.pem"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_an_index_signed_by_an_unknown_ca_is_refused_naming_ssl_cert_file(
    https_index: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = https_index
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with PackageIndex(url) as index, pytest.raises(PackageIndexError) as err:
        index.releases("alpha")
    message = str(err.value)
    assert "certificate is not trusted" in message
    assert "SSL_CERT_FILE" in message


def test_ssl_cert_file_makes_the_index_and_pip_trust_it(
    https_index: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, ca = https_index
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with PackageIndex(url) as index:
        assert [str(r.version) for r in index.releases("alpha")] == ["1.0.0", "1.1.0"]
    found = download([], index_url=url, dest=tmp_path / "wh", extra_requirements=["alpha==1.1.0"])
    assert [p.name for p in found] == ["alpha-1.1.0-py3-none-any.whl"]


def test_a_missing_ssl_cert_file_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "absent.pem"))
    with pytest.raises(PackageIndexError, match=r"SSL_CERT_FILE=.*absent.pem"):
        ssl_context()


def test_proxy_variables_are_honoured_and_no_proxy_bypasses_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = b'{"meta": {"api-version": "1.0"}, "name": "alpha", "files": []}'
    routes = {
        "http://index.invalid/simple/alpha/": (200, "application/vnd.pypi.simple.v1+json", page)
    }
    with static_server(routes) as (proxy, seen):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        with PackageIndex("http://index.invalid/simple/") as index:
            assert index.releases("alpha") == []
        assert [r["path"] for r in seen] == ["http://index.invalid/simple/alpha/"]
        monkeypatch.setenv("NO_PROXY", "index.invalid")
        with (
            PackageIndex("http://index.invalid/simple/") as index,
            pytest.raises(PackageIndexError, match="cannot reach the package index"),
        ):
            index.releases("alpha")
        assert len(seen) == 1
