"""A pod stopped by its database is reported as a database problem, not as CrashLoopBackOff or
a failed release."""

from __future__ import annotations

from typing import Any

import pytest

from aidbox_operator.model import ClusterStatus
from aidbox_operator.status import Observation, compute_status, summarize_pod
from aidbox_operator.status.database import database_problem

# What Aidbox's log ends with (PostgreSQL JDBC driver and server texts); the stand-in prints
# the same words.
REFUSED_LOG = (
    "2026-12-02 07:40:01.120 INFO  aidbox starting\n"
    "2026-12-02 07:40:02.301 ERROR org.postgresql.util.PSQLException: FATAL: password "
    'authentication failed for user "aidbox"\n'
)
UNREACHABLE_LOG = (
    "07:40:02 ERROR HikariPool-1 - Exception during pool initialization.\n"
    "org.postgresql.util.PSQLException: Connection to 10.96.0.40:5432 refused. Check that the "
    "hostname and port are correct and that the postmaster is accepting TCP/IP connections.\n"
)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (REFUSED_LOG, "DatabaseRefused"),
        (UNREACHABLE_LOG, "DatabaseUnreachable"),
        ('PSQLException: FATAL: database "fhir" does not exist', "DatabaseRefused"),
        ('FATAL: no pg_hba.conf entry for host "10.0.0.3", user "x"', "DatabaseRefused"),
        ("Caused by: java.net.UnknownHostException: db.example", "DatabaseUnreachable"),
        ("Caused by: java.net.SocketTimeoutException: Connect timed out", "DatabaseUnreachable"),
        ("PSQLException: The connection attempt failed.", "DatabaseUnreachable"),
    ],
)
def test_database_failures_are_told_apart(message: str, reason: str) -> None:
    found = database_problem(message)
    assert found is not None and found[0] == reason


@pytest.mark.parametrize(
    "message",
    ["", "migration 42 failed: column exists", "OutOfMemoryError: Java heap space", "exit 1"],
)
def test_other_failures_are_no_database_problem(message: str) -> None:
    assert database_problem(message) is None


def test_the_line_kept_is_the_drivers_not_the_loggers() -> None:
    found = database_problem(REFUSED_LOG)
    assert found is not None
    assert found[1].startswith("org.postgresql.util.PSQLException: FATAL: password")


def _pod(
    name: str, message: str, ready: bool = False, image: str = "aidbox:2510"
) -> dict[str, Any]:
    terminated = {"exitCode": 1, "reason": "Error", "message": message}
    return {
        "metadata": {"name": name, "uid": name, "labels": {"pod-template-hash": "h"}},
        "spec": {"nodeName": f"node-{name}", "containers": [{"name": "main", "image": image}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": "main",
                    "restartCount": 3,
                    "state": {"running": {}}
                    if ready
                    else {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": terminated},
                }
            ],
        },
    }


def _deployment(ready: int, image: str = "aidbox:2510") -> dict[str, Any]:
    return {
        "metadata": {"generation": 1},
        "spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}},
        "status": {
            "replicas": 2,
            "readyReplicas": ready,
            "updatedReplicas": 2,
            "availableReplicas": ready,
            "observedGeneration": 1,
        },
    }


def _status(pods: list[dict[str, Any]], ready: int, **kwargs: Any) -> ClusterStatus:
    obs = Observation(
        generation=1,
        desired_replicas=2,
        selector="s",
        deployment=_deployment(ready),
        pods=tuple(summarize_pod(p) for p in pods),
    )
    return compute_status(obs, kwargs.get("previous") or ClusterStatus(), "2026-12-02T07:40:00Z")


def _condition(status: ClusterStatus, type_: str) -> tuple[str, str, str]:
    found = status.condition(type_)
    assert found is not None
    return found.status, found.reason, found.message


def test_no_pod_serving_for_wrong_credentials_is_stalled_with_the_servers_words() -> None:
    status = _status([_pod("a", REFUSED_LOG), _pod("b", REFUSED_LOG)], ready=0)
    stalled = _condition(status, "Stalled")
    assert stalled[:2] == ("True", "DatabaseRefused")
    assert "password authentication failed" in stalled[2] and "pod a" in stalled[2]
    assert _condition(status, "Ready")[:2] == ("False", "DatabaseRefused")
    assert _condition(status, "Degraded")[:2] == ("True", "DatabaseRefused")
    assert status.phase == "Degraded"


def test_an_unreachable_database_names_the_address() -> None:
    status = _status([_pod("a", UNREACHABLE_LOG), _pod("b", UNREACHABLE_LOG)], ready=0)
    stalled = _condition(status, "Stalled")
    assert stalled[:2] == ("True", "DatabaseUnreachable") and "10.96.0.40:5432" in stalled[2]


def test_one_pod_failing_beside_a_serving_one_degrades_without_stalling() -> None:
    status = _status([_pod("a", "", ready=True), _pod("b", UNREACHABLE_LOG)], ready=1)
    assert _condition(status, "Degraded")[:2] == ("True", "DatabaseUnreachable")
    assert _condition(status, "Stalled")[0] == "False"


def test_a_pod_ready_again_after_a_database_failure_is_no_problem() -> None:
    status = _status([_pod("a", REFUSED_LOG, ready=True), _pod("b", "", ready=True)], ready=2)
    assert _condition(status, "Ready")[0] == "True"
    assert _condition(status, "Degraded")[0] == "False"


def test_a_crash_without_database_words_stays_a_crash() -> None:
    status = _status([_pod("a", "exit"), _pod("b", "exit")], ready=0)
    assert _condition(status, "Degraded")[1] == "CrashLoopBackOff"
    assert _condition(status, "Stalled")[0] == "False"
