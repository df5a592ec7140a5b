"""Schemathesis against the JSON API in process (WSGI), on the real database: the demo
directory, orders of the client's department (one confidential) and of another one, and a
department's token. Every operation of the OpenAPI document gets generated requests, valid
and invalid ones, and every answer goes through all of Schemathesis's checks (no server
error, status codes, content types and bodies as documented, invalid data refused, valid
data accepted, a missing token refused ...). Operations on one order also run with the
numbers of the seeded orders, so that the moves meet real orders in every state.

Hypothesis runs inside the test (``APIOperation.as_strategy``) rather than through
``schemathesis.pytest.from_fixture``, whose lazy loader reaches into a pytest internal
(``Node._nodeid``) that pytest 9.2 no longer has."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from tests.support.orders import dispatched_order, import_demo_directory, received_order
from webapp.api import clients

OWN = "D-CGQ-ZJJ"
OTHER = "D-CGQ-CGJ"
# Per operation and kind of data: the whole run takes about 20 s on SQLite, 30 s on
# PostgreSQL. API_FUZZ_EXAMPLES=500 digs deeper by hand.
EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "25"))
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def filter_query(_context: schemathesis.HookContext, query: dict[str, Any] | None) -> bool:
    """Leave out queries with a parameter whose value is an empty list: it is not sent at
    all, so the server sees a valid request where Schemathesis counts an unknown one."""
    return not query or all(value != [] for value in query.values())


def test_no_generated_request_gets_a_server_error_or_breaks_the_document(
    app: Flask, db: Session
) -> None:
    import_demo_directory(db)
    seeded = [
        dispatched_order(db, department_code=OWN, summary="小区垃圾堆了一个星期").number,
        dispatched_order(db, department_code=OWN, confidential=True, summary="保密的投诉").number,
        dispatched_order(db, department_code=OTHER, summary="占道经营").number,
        received_order(db, summary="还没派单").number,
    ]
    _client, token = clients.add_client(
        "schemathesis", department_code=OWN, actor="system:test", session=db
    )
    db.commit()
    auth = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema.hook(filter_query)

    runs: list[tuple[str, st.SearchStrategy[schemathesis.Case]]] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in MODES:
            runs.append((f"{operation.label} {mode.value}", operation.as_strategy(mode)))
        if "{number}" in operation.path:
            numbers = st.sampled_from(seeded)
            runs.append(
                (
                    f"{operation.label} on the seeded orders",
                    numbers.flatmap(
                        lambda number, op=operation: op.as_strategy(
                            path_parameters={"number": number}
                        )
                    ),
                )
            )
    assert len(runs) >= 20, [label for label, _ in runs]

    answered: Counter[tuple[str, int]] = Counter()
    for label, strategy in runs:

        @FUZZ
        @given(case=strategy)
        def requests_are_answered_as_documented(case: schemathesis.Case) -> None:
            response = case.call_and_validate(headers=auth)
            answered[case.operation.label, response.status_code] += 1

        try:
            requests_are_answered_as_documented()
        except Exception as failure:
            pytest.fail(f"{label}:\n{failure}")

    # The fuzzing reached the views, not only the checks in front of them.
    succeeded = {label for label, status in answered if status == 200}
    assert {"GET /api/v1/work-orders", "GET /api/v1/directory/items"} <= succeeded
    assert "GET /api/v1/work-orders/{number}/history" in succeeded
    assert any(label.startswith("POST") for label in succeeded), sorted(answered.items())
