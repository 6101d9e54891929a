"""Which namespaces the informers serve: exactly kopf's, for names and glob patterns."""

from __future__ import annotations

import pytest
from kopf._cogs.structs.references import match_namespace

from aidbox_operator.runtime.informer import Scope, namespace_matches, scopes_for

PATTERNS = [
    "t-*",
    "myapp-*, !*-pr-*, *pr-123",
    "!*-pr-*, *pr-123",
    "!kube-*",
    "a-*, b-*",
    "exact",
    "t-?",
]
NAMES = [
    "t-1",
    "t-12",
    "t-",
    "myapp-test",
    "myapp-pr-123",
    "myapp-pr-456",
    "otherapp-pr-123",
    "kube-system",
    "default",
    "a-x",
    "b-x",
    "exact",
    "exactly",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_namespace_patterns_match_like_kopf(pattern: str) -> None:
    for name in NAMES:
        assert namespace_matches(name, pattern) == match_namespace(name, pattern), (name, pattern)


def test_named_namespaces_are_watched_one_by_one_and_globs_cluster_wide() -> None:
    assert scopes_for([]) == [Scope()]
    assert scopes_for(["a", "b", "a"]) == [Scope("a"), Scope("b")]
    glob = scopes_for(["a", "t-*"])
    assert glob == [Scope(patterns=("a", "t-*"))]
    assert glob[0].accepts("a") and glob[0].accepts("t-x") and not glob[0].accepts("b")
    assert Scope("a").accepts("a") and not Scope("a").accepts("ab")
    assert Scope().accepts("anything")
