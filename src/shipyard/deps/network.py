"""How shipyard reaches a package index: which certificates it trusts and which proxy it uses.

Trust: the system's CA store (OpenSSL's default paths), plus ``SSL_CERT_FILE`` (a PEM bundle) and
``SSL_CERT_DIR`` (a hashed certificate folder) when set, the variables a TLS-intercepting proxy's
users already set for pip, curl and git. When the system store is empty (a minimal container),
certifi's bundle is used instead. Certificates are always verified; there is no switch to turn
that off.

Proxies: ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (either case) are honoured
as curl and pip read them. Nothing else is taken from the environment (no netrc through the HTTP
library: credentials come from ``shipyard.deps.credentials`` and go to the index's origin only).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping

import certifi
import httpx

from shipyard.errors import PackageIndexError

CERT_FILE = "SSL_CERT_FILE"
CERT_DIR = "SSL_CERT_DIR"
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


def ssl_context(environ: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """A verifying client context trusting the system store and ``SSL_CERT_FILE``/``SSL_CERT_DIR``."""
    env = os.environ if environ is None else environ
    context = ssl.create_default_context()
    cafile, capath = env.get(CERT_FILE) or None, env.get(CERT_DIR) or None
    if cafile is not None or capath is not None:
        try:
            context.load_verify_locations(cafile=cafile, capath=capath)
        except (OSError, ssl.SSLError) as exc:
            where = " and ".join(
                f"{name}={value}"
                for name, value in ((CERT_FILE, cafile), (CERT_DIR, capath))
                if value
            )
            raise PackageIndexError(
                f"cannot load the certificates named by {where} ({exc}); point it at a PEM file "
                "(or a folder of hashed certificates) or unset it."
            ) from exc
    elif not context.cert_store_stats()["x509_ca"] and not _has_default_dir():
        context.load_verify_locations(cafile=certifi.where())
    return context


def _has_default_dir() -> bool:
    """Whether OpenSSL's default certificate folder holds anything (it is read lazily)."""
    folder = ssl.get_default_verify_paths().capath
    return bool(folder and os.path.isdir(folder) and os.listdir(folder))


def client(*, timeout: float) -> httpx.Client:
    """An HTTP client for index requests: the trust above, redirects followed, env proxies."""
    # trust_env=True is what makes httpx read the proxy variables; with an explicit `verify`
    # context it takes nothing else from the environment for TLS.
    return httpx.Client(
        timeout=timeout, follow_redirects=True, verify=ssl_context(), trust_env=True
    )


def is_certificate_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a failed certificate verification."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            seen
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


CERTIFICATE_HINT = (
    "its TLS certificate is not trusted. Behind a TLS-intercepting proxy, set SSL_CERT_FILE to "
    "the proxy's CA bundle (a PEM file) or SSL_CERT_DIR to a folder of hashed certificates"
)
