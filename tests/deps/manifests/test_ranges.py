"""Range strategies: the new constraint always admits the new version, in the style it was written."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from shipyard.deps.manifests import range_for
from shipyard.deps.manifests.ranges import poetry_to_pep440
from shipyard.errors import DependencyError


@pytest.mark.parametrize(
    ("strategy", "specifier", "new", "expected"),
    [
        ("pin", ">=1.2,<2", "2.1.0", "==2.1.0"),
        ("bump", ">=1.2,<2", "1.5.0", ">=1.5.0,<2"),
        ("bump", ">=1.2,<2", "2.1.0", ">=2.1.0,<3"),
        ("widen", ">=1.2,<2", "2.1.0", ">=1.2,<3"),
        ("widen", ">=1.2, <2.0", "2.1.0", ">=1.2, <2.2"),
        ("widen", ">=1.2,<2", "1.9", ">=1.2,<2"),
        ("bump", "~=1.4", "2.1.0", "~=2.1"),
        ("widen", "~=1.4", "2.1.0", ">=1.4,<3"),
        ("bump", "==1.*", "2.1.0", "==2.*"),
        ("widen", "==1.*", "2.1.0", ">=1,<3"),
        ("widen", ">=1.0,!=2.1.0", "2.1.0", ">=1.0"),
        ("bump", "==1.2.3", "1.2.4", "==1.2.4"),
        ("pin", "^1.2", "2.1.0", "2.1.0"),
        ("bump", "^1.2", "1.5.1", "^1.5"),
        ("widen", "^1.2", "1.5.1", "^1.2"),
        ("widen", "^1.2", "2.1.0", ">=1.2,<3"),
        ("widen", "~1.2", "1.3.0", ">=1.2,<1.4"),
        ("bump", "1.0.0", "1.0.1", "1.0.1"),
    ],
)
def test_strategies(strategy: str, specifier: str, new: str, expected: str) -> None:
    assert range_for(strategy, specifier, Version(new)) == expected


def test_unknown_strategy_and_unreadable_constraints_say_what_to_write() -> None:
    with pytest.raises(
        DependencyError, match=r"unknown range strategy 'grow'; use pin, bump or widen"
    ):
        range_for("grow", ">=1", Version("2"))
    with pytest.raises(DependencyError, match=r"cannot read the version constraint '>>1'"):
        range_for("bump", ">>1", Version("2"))
    with pytest.raises(DependencyError, match=r"has alternatives \(\|\|\)"):
        poetry_to_pep440("^1.2 || ^2.0")


_version = st.builds(
    lambda *parts: Version(".".join(map(str, parts))),
    *(st.integers(min_value=0, max_value=12) for _ in range(3)),
)
_pep440 = st.sampled_from([">={v}", ">={v},<{w}", "~={v}", "=={v}", "<{w}", ">{v},<={w}"])
_poetry = st.sampled_from(["^{v}", "~{v}", "{v}", ">={v},<{w}"])


@settings(deadline=None)
@given(st.sampled_from(["pin", "bump", "widen"]), _pep440 | _poetry, _version, _version, _version)
def test_the_result_admits_the_new_version(
    strategy: str, template: str, v: Version, w: Version, new: Version
) -> None:
    specifier = template.format(v=v, w=w)
    result = range_for(strategy, specifier, new)
    poetry_style = result[:1] not in "<>=~!" or (result[:1] == "~" and result[:2] != "~=")
    pep440 = poetry_to_pep440(result) if poetry_style else result
    assert SpecifierSet(pep440).contains(new, prereleases=True), (specifier, result)
