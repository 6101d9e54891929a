"""Whether a pod stopped because of its database, read from the words it stopped with.

Aidbox reaches PostgreSQL through the PostgreSQL JDBC driver and stops when it cannot: the pod
then crash-loops, and `CrashLoopBackOff` alone sends the user to the wrong place (the image, the
release). The Aidbox container is rendered with `terminationMessagePolicy:
FallbackToLogsOnError`, so the kubelet keeps the last lines of its log as the termination
message; the texts below are the driver's and PostgreSQL's own (SQLSTATE classes 28 and 3D for
a refusal). Two kinds are told apart because their fixes are: an unreachable database is a
network, a host name or a server that is down; a refusal is the credentials or the database
name the cluster was given.
"""

from __future__ import annotations

import re
from typing import Literal

DatabaseReason = Literal["DatabaseUnreachable", "DatabaseRefused"]
UNREACHABLE: DatabaseReason = "DatabaseUnreachable"
REFUSED: DatabaseReason = "DatabaseRefused"

# Checked in this order: a refusal names the server's words, which only a reached server says.
_PATTERNS: tuple[tuple[DatabaseReason, re.Pattern[str]], ...] = (
    (REFUSED, re.compile(r"password authentication failed for user", re.I)),
    (REFUSED, re.compile(r"no pg_hba\.conf entry for host", re.I)),
    (REFUSED, re.compile(r'(database|role) "[^"]*" does not exist', re.I)),
    (REFUSED, re.compile(r"\bSQLSTATE\W*(28P01|28000|3D000)\b", re.I)),
    (UNREACHABLE, re.compile(r"Connection to \S+ refused", re.I)),
    (UNREACHABLE, re.compile(r"java\.net\.(UnknownHostException|SocketTimeoutException)")),
    (UNREACHABLE, re.compile(r"java\.net\.(ConnectException|NoRouteToHostException)")),
    (UNREACHABLE, re.compile(r"PSQLException: The connection attempt failed", re.I)),
)
_LINE_LIMIT = 300


def database_problem(message: str) -> tuple[DatabaseReason, str] | None:
    """The kind of database problem a termination message shows, with the line that says it;
    None when it names none. The last matching line wins: a log tail ends with the cause."""
    found: tuple[DatabaseReason, str] | None = None
    for line in message.splitlines():
        for reason, pattern in _PATTERNS:
            if pattern.search(line):
                found = (reason, _trimmed(line))
                break
    return found


def _trimmed(line: str) -> str:
    text = line.strip()
    # A log line starts with the logger's time and level; the driver's words are what matters.
    at = text.find("PSQLException")
    if at > 0:
        text = "org.postgresql.util." + text[at:]
    return text[:_LINE_LIMIT]


def explain(reason: str, pod: str, line: str) -> str:
    if reason == REFUSED:
        what = "the database refuses this cluster's credentials or database name"
        fix = "check spec.database (credentials Secret, name) against the server"
    else:
        what = "the database cannot be reached"
        fix = "check spec.database.host/port, the network path and that the server runs"
    return f"{what} (pod {pod}: {line}); {fix}"
