"""PyPI's JSON API (``/pypi/<name>/json``, ``/pypi/<name>/<version>/json``): project links and the
known vulnerabilities of a release. Optional: an index without it yields no links and no advisories.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from packaging.utils import canonicalize_name
from packaging.version import Version

from shipyard.deps.index import PackageIndex, redact
from shipyard.deps.manifests.model import Dependency
from shipyard.deps.planning import PackageData, current_version
from shipyard.deps.security import Vulnerability
from shipyard.errors import PackageIndexError

log = logging.getLogger(__name__)
JSON_ACCEPT = "application/json"


@dataclass(frozen=True)
class ProjectInfo:
    """What the JSON API says about one project (at one version, when asked for one)."""

    name: str
    links: Mapping[str, str] = field(default_factory=dict)
    vulnerabilities: tuple[Vulnerability, ...] = ()


def json_api_base(index_url: str, configured: str | None = None) -> str | None:
    """Where the JSON API is: ``configured`` (``""`` turns it off), else the index URL with its
    trailing ``/simple/`` replaced by ``/pypi/`` (PyPI's layout, and the local index's)."""
    if configured is not None:
        return (configured.rstrip("/") + "/") if configured else None
    parts = urlsplit(index_url)
    path = parts.path.rstrip("/")
    if not path.endswith("/simple"):
        return None
    return parts._replace(path=path.removesuffix("simple") + "pypi/").geturl()


class JsonApi:
    """Reads the JSON API through the index's client: its cache, and its credentials on its origin."""

    def __init__(self, index: PackageIndex, base: str) -> None:
        self.index = index
        self.base = base

    def project(self, name: str, version: Version | None = None) -> ProjectInfo | None:
        """The project's links and the advisories affecting ``version`` (or its latest release).

        None when the API does not know the project or the index has no JSON API.
        """
        path = quote(canonicalize_name(name)) + (f"/{quote(str(version))}" if version else "")
        url = urljoin(self.base, f"{path}/json")
        response = self.index.get(url, accept=JSON_ACCEPT)
        if response.status_code in (404, 410):
            return None
        if response.status_code >= 400:
            raise PackageIndexError(
                f"the JSON API at {redact(self.base)} answered HTTP {response.status_code} for "
                f'{name}; set [deps] json_api_url (or "" to go without links and advisories).'
            )
        try:
            data: dict[str, Any] = response.json()
        except ValueError:
            log.debug("%s answered something other than JSON", url)
            return None
        return ProjectInfo(
            name=name,
            links=_links(data.get("info") or {}),
            vulnerabilities=tuple(
                v
                for item in data.get("vulnerabilities") or ()
                if isinstance(item, dict) and (v := Vulnerability.from_json(item)) is not None
            ),
        )


def _links(info: Mapping[str, Any]) -> dict[str, str]:
    links: dict[str, str] = {}
    for label, url in (info.get("project_urls") or {}).items():
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            links[str(label)] = url
    home = info.get("home_page")
    if isinstance(home, str) and home.startswith(("https://", "http://")):
        links.setdefault("Homepage", home)
    page = info.get("release_url") or info.get("package_url")
    if isinstance(page, str) and page.startswith(("https://", "http://")):
        links.setdefault("Package", page)
    return links


LOOKUPS_AT_ONCE = 12
"""Projects looked up at the same time. Every request of one run goes through one client, whose
connection pool is per origin, so this also bounds the connections open to any one index."""


def gather(
    dependencies: Sequence[Dependency],
    index: PackageIndex,
    api: JsonApi | None,
    *,
    at_once: int = LOOKUPS_AT_ONCE,
) -> dict[str, PackageData]:
    """Releases, project links and the advisories of every version in use, per canonical name.

    Projects are looked up ``at_once`` at a time (each lookup's requests one after another); the
    result is in the order the dependencies name them. A project the index does not have is left
    out (planning reports it as skipped); any other index error stops the lookup.
    """
    by_name: dict[str, list[Dependency]] = {}
    for dep in dependencies:
        by_name.setdefault(dep.canonical_name, []).append(dep)
    if not by_name:
        return {}
    workers = max(1, min(at_once, len(by_name)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="index-lookup") as pool:
        found = list(
            pool.map(lambda occurrences: _lookup(occurrences, index, api), by_name.values())
        )
    return {name: data for name, data in zip(by_name, found, strict=True) if data is not None}


def _lookup(
    occurrences: Sequence[Dependency], index: PackageIndex, api: JsonApi | None
) -> PackageData | None:
    try:
        releases = tuple(index.releases(occurrences[0].name))
    except PackageIndexError as exc:
        if "HTTP 404" not in str(exc):
            raise
        return None
    in_use = {d.pinned for d in occurrences if d.pinned is not None}
    current = current_version(occurrences, releases)
    if current is not None:
        in_use.add(current)
    vulnerabilities: dict[Version, tuple[Vulnerability, ...]] = {}
    links: Mapping[str, str] = {}
    if api is not None:
        for version in sorted(in_use):
            info = api.project(occurrences[0].name, version)
            if info is None:
                continue
            vulnerabilities[version] = info.vulnerabilities
            links = links or info.links
    return PackageData(
        name=occurrences[0].name,
        releases=releases,
        vulnerabilities=vulnerabilities,
        links=links,
    )
