"""Classification from the change itself: each type is recognised from real file contents, and a
declared type never makes a change route more permissively than what the change shows."""

from __future__ import annotations

import pytest

from shipyard.model import Action, ChangeType
from shipyard.policy import load_policy
from shipyard.policy.classify import ChangedFile, classify, public_api, reconcile

SEED = load_policy("seed").routing

MODULE = '''"""Inventory."""


def restock(item: str, amount: int) -> int:
    """Add stock."""
    # keep it simple
    return amount


class Store:
    def __init__(self, name: str) -> None:
        self.name = name

    def count(self, item: str) -> int:
        return 0

    def _private(self) -> None:
        pass
'''


def modified(path: str, before: str, after: str) -> ChangedFile:
    return ChangedFile(path=path, status="M", before=before, after=after)


def kinds(*files: ChangedFile) -> tuple[ChangeType, ...]:
    return classify(files).types


def test_markdown_and_rst_files_are_documentation() -> None:
    found = classify(
        [
            ChangedFile(path="README.md", before="# a\n", after="# b\n"),
            ChangedFile(path="docs/guide/usage.rst", status="A", after="Usage\n=====\n"),
        ]
    )
    assert found.types == (ChangeType.DOCUMENTATION,)
    assert "README.md, docs/guide/usage.rst are documentation" in found.evidence[0]


def test_docstring_and_comment_edits_are_documentation() -> None:
    after = MODULE.replace('"""Add stock."""', '"""Add stock to an item; returns the amount."""')
    after = after.replace("# keep it simple", "# amounts are never negative")
    assert kinds(modified("src/inventory/stock.py", MODULE, after)) == (ChangeType.DOCUMENTATION,)


def test_a_comment_only_change_is_not_formatting() -> None:
    after = MODULE.replace("# keep it simple", "# something else entirely")
    assert kinds(modified("lib/stock.py", MODULE, after)) == (ChangeType.DOCUMENTATION,)


def test_layout_only_python_changes_are_formatting() -> None:
    after = MODULE.replace(
        "def restock(item: str, amount: int) -> int:",
        "def restock(\n    item: str,\n    amount: int,\n) -> int:",
    )
    after = after.replace("self.name = name", "self.name = (name)")
    found = classify([modified("lib/stock.py", MODULE, after)])
    assert found.types == (ChangeType.FORMATTING,)
    assert "identical syntax tree" in found.evidence[0]


def test_a_changed_expression_is_not_formatting_or_documentation() -> None:
    after = MODULE.replace("return amount", "return amount + 1")
    assert kinds(modified("lib/stock.py", MODULE, after)) == (ChangeType.REFACTOR,)


def test_version_only_requirement_changes_are_a_dependency_update() -> None:
    before = "# pins\nslugkit==1.0.0\nmoneyfmt[fast]==1.4.0 ; python_version >= '3.8'\n"
    after = "# pins\nslugkit==1.1.0\nmoneyfmt[fast]==2.0.0 ; python_version >= '3.8'\n"
    found = classify(
        [
            modified("requirements.txt", before, after),
            modified("uv.lock", "a", "b"),
        ]
    )
    assert found.types == (ChangeType.DEPENDENCY_UPDATE,)
    assert any("only dependency versions changed" in e for e in found.evidence)


@pytest.mark.parametrize(
    "after",
    [
        "slugkit==1.0.0\nmoneyfmt==1.4.0\nrequests==2.0\n",  # a new package
        "slugkit==1.0.0\n",  # a removed package
        "slugkit[extra]==1.0.0\nmoneyfmt==1.4.0\n",  # extras changed
        "slugkit==1.0.0\n--index-url http://evil.example/simple\nmoneyfmt==1.4.0\n",  # an option
    ],
)
def test_requirement_changes_beyond_versions_are_not_a_dependency_update(after: str) -> None:
    before = "slugkit==1.0.0\nmoneyfmt==1.4.0\n"
    assert ChangeType.DEPENDENCY_UPDATE not in kinds(modified("requirements.txt", before, after))


def test_pyproject_and_package_json_version_bumps_are_dependency_updates() -> None:
    pyproject = '[project]\nname = "x"\ndependencies = ["slugkit>=1.0"]\n[project.optional-dependencies]\ndev = ["pytest==9.1"]\n'
    package = '{"name": "x", "dependencies": {"left-pad": "^1.0.0"}}'
    found = classify(
        [
            modified(
                "pyproject.toml",
                pyproject,
                pyproject.replace(">=1.0", ">=1.1").replace("9.1", "9.2"),
            ),
            modified("web/package.json", package, package.replace("^1.0.0", "^1.3.0")),
        ]
    )
    assert found.types == (ChangeType.DEPENDENCY_UPDATE,)


def test_a_pyproject_change_to_scripts_is_not_a_dependency_update() -> None:
    before = '[project]\nname = "x"\ndependencies = ["a==1"]\n'
    after = before + '[project.scripts]\nx = "x:main"\n'
    assert ChangeType.DEPENDENCY_UPDATE not in kinds(modified("pyproject.toml", before, after))


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("Dockerfile", ChangeType.INFRASTRUCTURE),
        ("deploy/main.tf", ChangeType.INFRASTRUCTURE),
        ("deploy/k8s/api.yaml", ChangeType.INFRASTRUCTURE),
        ("charts/api/values.yaml", ChangeType.INFRASTRUCTURE),
        (".github/workflows/ci.yml", ChangeType.INFRASTRUCTURE),
        ("app/migrations/0002_add_index.py", ChangeType.DATABASE_MIGRATION),
        ("alembic/versions/3f1c_add_table.py", ChangeType.DATABASE_MIGRATION),
        ("db/migrate/20260101_add.sql", ChangeType.DATABASE_MIGRATION),
        ("src/auth/login.py", ChangeType.AUTH_CHANGE),
        ("app/security/tokens.py", ChangeType.AUTH_CHANGE),
        ("app/oauth_client.py", ChangeType.AUTH_CHANGE),
    ],
)
def test_sensitive_paths_are_recognised_with_evidence(path: str, kind: ChangeType) -> None:
    found = classify([ChangedFile(path=path, status="A", after="x = 1\n")])
    assert kind in found.types
    assert any(e.startswith(kind.value) and path in e for e in found.evidence)


def test_a_renamed_file_is_judged_by_its_old_path_too() -> None:
    found = classify(
        [
            ChangedFile(
                path="lib/login.py",
                old_path="src/auth/login.py",
                status="R",
                before="x = 1\n",
                after="x = 1\n",
            )
        ]
    )
    assert ChangeType.AUTH_CHANGE in found.types


def test_a_removed_public_function_is_an_api_change() -> None:
    after = MODULE.replace(
        "def restock(item: str, amount: int) -> int:",
        "def _restock(item: str, amount: int) -> int:",
    )
    found = classify([modified("lib/stock.py", MODULE, after)])
    assert found.types == (ChangeType.API_CHANGE,)
    assert "public restock was removed" in found.evidence[0]


def test_an_incompatible_signature_is_an_api_change() -> None:
    after = MODULE.replace("def count(self, item: str)", "def count(self, item: str, where: str)")
    found = classify([modified("lib/stock.py", MODULE, after)])
    assert found.types == (ChangeType.API_CHANGE,)
    assert "signature of Store.count changed" in found.evidence[0]


def test_reordered_parameters_are_an_api_change() -> None:
    after = MODULE.replace(
        "def restock(item: str, amount: int)", "def restock(amount: int, item: str)"
    )
    assert kinds(modified("lib/stock.py", MODULE, after)) == (ChangeType.API_CHANGE,)


def test_a_new_optional_parameter_is_a_compatible_feature() -> None:
    after = MODULE.replace(
        "def restock(item: str, amount: int)",
        "def restock(item: str, amount: int, *, note: str = '')",
    )
    found = classify([modified("lib/stock.py", MODULE, after)])
    assert found.types == (ChangeType.FEATURE,)
    assert "restock gains optional parameters note" in found.evidence[0]


def test_a_new_public_function_is_a_feature() -> None:
    after = MODULE + "\n\ndef low_stock(threshold: int = 3) -> list[str]:\n    return []\n"
    found = classify([modified("lib/stock.py", MODULE, after)])
    assert found.types == (ChangeType.FEATURE,)
    assert "new public low_stock" in found.evidence[0]


def test_private_modules_and_names_are_not_public_api() -> None:
    after = MODULE.replace("def restock", "def restocked")
    assert kinds(modified("lib/_internal/stock.py", MODULE, after)) == (ChangeType.REFACTOR,)
    assert "Store._private" not in public_api(__import__("ast").parse(MODULE))


def test_dunder_all_defines_the_public_names() -> None:
    before = "__all__ = ['a']\n\ndef a(): pass\n\ndef helper(): pass\n"
    after = "__all__ = ['a']\n\ndef a(): pass\n"
    assert kinds(modified("lib/x.py", before, after)) == (ChangeType.REFACTOR,)


def test_code_changed_with_its_tests_is_a_behaviour_change() -> None:
    after = MODULE.replace("return amount", "return max(amount, 0)")
    found = classify(
        [
            modified("lib/stock.py", MODULE, after),
            modified("tests/test_stock.py", "def test_a(): pass\n", "def test_a(): assert 1\n"),
        ]
    )
    assert found.types == (ChangeType.FEATURE,)
    assert "behaviour changes" in found.evidence[0]


def test_test_only_changes_are_tests() -> None:
    assert kinds(ChangedFile(path="tests/test_x.py", status="A", after="def test(): pass\n")) == (
        ChangeType.TESTS,
    )


def test_non_python_code_cannot_be_judged_and_says_so() -> None:
    found = classify([modified("web/app.js", "let a = 1\n", "let a = 2\n")])
    assert found.types == (ChangeType.OTHER,)
    assert "not Python source" in found.evidence[0]


def test_invalid_python_is_never_formatting() -> None:
    found = classify([modified("lib/x.py", "x = 1\n", "x = (\n")])
    assert found.types == (ChangeType.OTHER,)


def test_special_paths_come_before_the_primary_type() -> None:
    found = classify(
        [
            ChangedFile(path="Dockerfile", before="FROM a\n", after="FROM b\n"),
            modified("lib/stock.py", MODULE, MODULE + "\ndef new(): pass\n"),
        ]
    )
    assert found.types == (ChangeType.INFRASTRUCTURE, ChangeType.FEATURE)


def test_a_claim_of_documentation_does_not_hide_an_api_change() -> None:
    after = MODULE.replace("def restock", "def _restock")
    resolved = reconcile(
        ChangeType.DOCUMENTATION, classify([modified("lib/stock.py", MODULE, after)]), SEED
    )
    assert resolved.change_type is ChangeType.API_CHANGE
    assert resolved.overridden
    assert "declared documentation (MERGE), but the change is api_change (REVIEW)" in resolved.note


def test_a_dependency_update_touching_the_dockerfile_is_staged_not_merged() -> None:
    found = classify(
        [
            modified("requirements.txt", "a==1\n", "a==2\n"),
            ChangedFile(path="Dockerfile", before="FROM a\n", after="FROM b\n"),
        ]
    )
    resolved = reconcile(ChangeType.DEPENDENCY_UPDATE, found, SEED)
    assert resolved.change_type is ChangeType.INFRASTRUCTURE
    assert SEED.route(resolved.change_type) is Action.STAGING_ONLY


def test_a_confirmed_claim_stays_and_says_so() -> None:
    found = classify([modified("requirements.txt", "a==1\n", "a==2\n")])
    resolved = reconcile(ChangeType.DEPENDENCY_UPDATE, found, SEED)
    assert resolved.change_type is ChangeType.DEPENDENCY_UPDATE
    assert not resolved.overridden
    assert "confirmed" in resolved.note


def test_a_more_conservative_claim_is_kept() -> None:
    found = classify([modified("requirements.txt", "a==1\n", "a==2\n")])
    resolved = reconcile(ChangeType.FEATURE, found, SEED)
    assert resolved.change_type is ChangeType.FEATURE
    assert "routes no more conservatively" in resolved.note


def test_the_resolved_type_never_routes_more_permissively_than_the_claim() -> None:
    samples = [
        [modified("README.md", "a", "b")],
        [modified("lib/stock.py", MODULE, MODULE.replace("return amount", "return 1"))],
        [ChangedFile(path="src/auth/x.py", status="A", after="")],
        [modified("requirements.txt", "a==1\n", "a==2\nb==1\n")],
    ]
    for files in samples:
        for declared in ChangeType:
            resolved = reconcile(declared, classify(files), SEED)
            assert SEED.route(resolved.change_type).severity >= SEED.route(declared).severity
            for observed in resolved.observed:
                assert SEED.route(resolved.change_type).severity >= SEED.route(observed).severity
