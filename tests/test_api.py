"""The JSON API (/api/v1) through Flask's test client on the real database: tokens,
department scoping, confidential numbers, filters and cursors, JSON errors, a department's
moves, the OpenAPI document, and ``hotline api-client``."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.support.orders import (
    CALLER,
    TUESDAY_10AM,
    dispatched_order,
    import_demo_directory,
    received_order,
)
from tickets.models import ApiClient, WorkOrder, WorkOrderHistory, WorkOrderState
from webapp.api import clients
from webapp.cli import main

OWN = "D-CGQ-ZJJ"  # 城关区住房和城乡建设局
OTHER = "D-CGQ-CGJ"  # 城关区城市管理和综合执法局


def add_client(db: Session, name: str, department_code: str | None = None) -> str:
    _client, token = clients.add_client(
        name, department_code=department_code, actor="system:test", session=db
    )
    db.commit()
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def directory(db: Session) -> None:
    import_demo_directory(db)


@pytest.fixture
def own_token(db: Session, directory: None) -> str:
    return add_client(db, "zjj-system", OWN)


@pytest.fixture
def platform_token(db: Session) -> str:
    return add_client(db, "provincial-platform")


def get(client: FlaskClient, path: str, token: str, **params: Any) -> Any:
    response = client.get(f"/api/v1{path}", headers=bearer(token), query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def changed_at(db: Session, order: WorkOrder, at: datetime) -> WorkOrder:
    """The order as last changed at ``at`` (the moves stamp the real time)."""
    order.updated_at = at
    db.commit()
    return order


def numbers(page: dict[str, Any]) -> list[str]:
    return [order["number"] for order in page["data"]]


# -- tokens ------------------------------------------------------------------------------------


def test_a_request_without_a_token_is_a_401_json_with_a_bearer_challenge(
    client: FlaskClient,
) -> None:
    response = client.get("/api/v1/work-orders")

    assert response.status_code == 401
    assert response.mimetype == "application/json"
    assert "Bearer" in response.get_json()["error"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-token-anyone-was-given", "Token abc"],
)
def test_a_wrong_or_unknown_token_is_a_401(
    client: FlaskClient, platform_token: str, header: str
) -> None:
    response = client.get("/api/v1/work-orders", headers={"Authorization": header})

    assert response.status_code == 401
    assert response.get_json()["error"]
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_deactivated_clients_token_is_refused(
    client: FlaskClient, db: Session, platform_token: str
) -> None:
    assert client.get("/api/v1/work-orders", headers=bearer(platform_token)).status_code == 200
    stored = db.scalar(select(ApiClient).where(ApiClient.name == "provincial-platform"))
    assert stored is not None
    clients.deactivate_client(stored)
    db.commit()

    response = client.get("/api/v1/work-orders", headers=bearer(platform_token))

    assert response.status_code == 401
    assert response.get_json() == {"error": "This API client is deactivated."}


def test_only_the_tokens_sha256_is_stored(db: Session, platform_token: str) -> None:
    stored = db.scalar(select(ApiClient).where(ApiClient.name == "provincial-platform"))

    assert stored is not None
    assert stored.token_sha256 == hashlib.sha256(platform_token.encode()).hexdigest()
    assert len(platform_token) >= 40  # 32 random bytes, URL-safe


def test_the_last_use_is_written_at_most_once_a_minute(
    client: FlaskClient, db: Session, platform_token: str
) -> None:
    def last_used() -> datetime | None:
        db.expire_all()
        return db.scalar(
            select(ApiClient.last_used_at).where(ApiClient.name == "provincial-platform")
        )

    assert last_used() is None
    client.get("/api/v1/work-orders", headers=bearer(platform_token))
    first = last_used()
    assert first is not None

    client.get("/api/v1/work-orders", headers=bearer(platform_token))
    assert last_used() == first

    stored = db.scalar(select(ApiClient).where(ApiClient.name == "provincial-platform"))
    assert stored is not None
    stored.last_used_at = first - timedelta(minutes=2)
    db.commit()
    client.get("/api/v1/work-orders", headers=bearer(platform_token))
    later = last_used()
    assert later is not None and later >= first


# -- what a department sees ----------------------------------------------------------------


def test_a_department_lists_only_the_orders_dispatched_to_it(
    client: FlaskClient, db: Session, own_token: str, platform_token: str
) -> None:
    ours = dispatched_order(db, department_code=OWN, summary="小区垃圾没人清")
    theirs = dispatched_order(db, department_code=OTHER, summary="占道经营")
    undispatched = received_order(db, summary="还没派单的工单")

    assert numbers(get(client, "/work-orders", own_token)) == [ours.number]
    assert set(numbers(get(client, "/work-orders", platform_token))) == {
        ours.number,
        theirs.number,
        undispatched.number,
    }
    assert numbers(get(client, "/work-orders", own_token, number=theirs.number)) == []


@pytest.mark.parametrize("suffix", ["", "/history"])
def test_another_departments_order_is_a_404(
    client: FlaskClient, db: Session, own_token: str, suffix: str
) -> None:
    theirs = dispatched_order(db, department_code=OTHER)
    undispatched = received_order(db, summary="还没派单的工单")

    for number in (theirs.number, undispatched.number, "20991231999999"):
        response = client.get(f"/api/v1/work-orders/{number}{suffix}", headers=bearer(own_token))
        assert response.status_code == 404
        assert response.get_json() == {"error": f"No work order {number}."}


def test_one_order_and_its_history(client: FlaskClient, db: Session, own_token: str) -> None:
    ours = dispatched_order(db, department_code=OWN)

    order = get(client, f"/work-orders/{ours.number}", own_token)
    history = get(client, f"/work-orders/{ours.number}/history", own_token)

    assert order["number"] == ours.number
    assert order["state"] == "dispatched"
    assert order["department_code"] == OWN
    assert order["item_code"] == "C01-001"
    assert order["caller_number"] == CALLER
    assert order["dispatched_at"] == TUESDAY_10AM.isoformat()
    assert order["due_at"] is not None
    assert history["number"] == ours.number
    assert [(row["action"], row["to_state"]) for row in history["data"]] == [
        ("receive", "received"),
        ("dispatch", "dispatched"),
    ]
    assert history["data"][1]["details"]["department_code"] == OWN


def test_a_confidential_orders_number_is_hidden_from_departments_only(
    client: FlaskClient, db: Session, own_token: str, platform_token: str
) -> None:
    secret = dispatched_order(db, department_code=OWN, confidential=True, summary="保密的投诉")
    plain = dispatched_order(db, department_code=OWN, summary="普通的投诉")

    for page in (get(client, "/work-orders", own_token), None):
        if page is None:
            continue
        shown = {order["number"]: order for order in page["data"]}
        assert shown[secret.number]["caller_number"] is None
        assert shown[secret.number]["is_confidential"] is True
        assert shown[plain.number]["caller_number"] == CALLER
    assert get(client, f"/work-orders/{secret.number}", own_token)["caller_number"] is None
    assert get(client, f"/work-orders/{secret.number}", platform_token)["caller_number"] == CALLER


# -- filters and pages -----------------------------------------------------------------------


def test_filters_by_state_number_and_time_of_change(
    client: FlaskClient, db: Session, platform_token: str, directory: None
) -> None:
    early = changed_at(db, dispatched_order(db, summary="早上的工单"), TUESDAY_10AM)
    late = changed_at(
        db, dispatched_order(db, summary="下午的工单"), TUESDAY_10AM + timedelta(hours=5)
    )
    waiting = changed_at(db, received_order(db, summary="刚受理的工单"), TUESDAY_10AM)

    def listed(**params: Any) -> list[str]:
        return numbers(get(client, "/work-orders", platform_token, **params))

    assert listed(state="received") == [waiting.number]
    assert set(listed(state="dispatched")) == {early.number, late.number}
    assert listed(number=late.number) == [late.number]
    since = (TUESDAY_10AM + timedelta(hours=1)).astimezone().isoformat()
    assert late.number in listed(updated_since=since)
    assert early.number not in listed(updated_since=since)
    assert listed(updated_since="2026-11-24T15:00:00+08:00", state="dispatched") == [late.number]
    assert len(listed(updated_since="0001-01-01T00:00:00+05:00")) == 3  # before UTC's year 1
    assert listed(updated_since="9999-12-31T23:59:59-05:00") == []
    assert listed(cursor="99999999999999999999-1") == []  # a cursor past the calendar's end


def test_cursors_page_through_every_order_once_in_a_stable_order(
    client: FlaskClient, db: Session, platform_token: str, directory: None
) -> None:
    # Five changed at the same instant: the row id breaks the tie.
    made = [
        changed_at(db, dispatched_order(db, summary=f"第{i}张工单"), TUESDAY_10AM).number
        for i in range(5)
    ]
    earlier = dispatched_order(db, summary="更早改过的工单")
    made.append(changed_at(db, earlier, TUESDAY_10AM - timedelta(days=1)).number)

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = get(client, "/work-orders", platform_token, **params)
        seen += numbers(page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == [made[5], *made[:5]]  # oldest change first, then by id


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "lost"}, "state"),
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"updated_since": "2026-11-24T10:00:00"}, "updated_since"),  # no offset: ambiguous
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"number": "12-34"}, "number"),
        ({"number": "123\n"}, "number"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"updatedSince": "2026-11-24T10:00:00+08:00"}, "updatedSince"),  # a typo filters nothing
        ({"cursor": "MjAyNi0xMS0yNFQwMjowMDowMCswMDowMHwx" + "x"}, "cursor"),
    ],
)
def test_bad_query_parameters_are_a_400_naming_the_parameter(
    client: FlaskClient, platform_token: str, params: dict[str, str], field: str
) -> None:
    response = client.get(
        "/api/v1/work-orders", headers=bearer(platform_token), query_string=params
    )

    assert response.status_code == 400
    body = response.get_json()
    assert field in body["errors"]
    assert body["error"].startswith(f"Invalid request: {field}: ")


# -- errors that are not the views' ----------------------------------------------------------


def test_unknown_paths_and_wrong_methods_answer_json(
    client: FlaskClient, platform_token: str
) -> None:
    missing = client.get("/api/v1/tickets", headers=bearer(platform_token))
    wrong = client.delete("/api/v1/work-orders", headers=bearer(platform_token))
    not_a_number = client.get("/api/v1/work-orders/abc", headers=bearer(platform_token))

    assert missing.status_code == 404
    assert missing.get_json() == {"error": "Nothing is at /api/v1/tickets."}
    assert wrong.status_code == 405
    assert "DELETE is not allowed" in wrong.get_json()["error"]
    assert "GET" in wrong.headers["Allow"]
    assert not_a_number.status_code == 404
    assert not_a_number.mimetype == "application/json"


def test_the_rest_of_the_site_keeps_its_own_error_pages(client: FlaskClient) -> None:
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert response.mimetype == "text/html"


# -- a department's moves ---------------------------------------------------------------------


def post(client: FlaskClient, path: str, token: str, body: Any = None) -> Any:
    return client.post(f"/api/v1{path}", headers=bearer(token), json=body)


def test_a_department_signs_off_contacts_and_answers_through_the_api(
    client: FlaskClient, db: Session, own_token: str
) -> None:
    order = dispatched_order(db, department_code=OWN)
    path = f"/work-orders/{order.number}"

    accepted = post(client, f"{path}/accept", own_token)  # no body, no CSRF token
    contacted = post(client, f"{path}/contact", own_token, {"note": "已电话联系市民"})
    noted = post(client, f"{path}/progress", own_token, {"note": "物业已派人清理"})
    answered = post(client, f"{path}/answer", own_token, {"outcome": "垃圾已清运完毕"})

    assert accepted.status_code == 200, accepted.get_json()
    assert accepted.get_json()["state"] == "accepted"
    assert contacted.get_json()["state"] == "in_progress"
    assert noted.status_code == 200
    assert answered.get_json()["state"] == "answered"
    assert answered.get_json()["outcome"] == "垃圾已清运完毕"
    rows = db.scalars(
        select(WorkOrderHistory)
        .where(WorkOrderHistory.work_order_id == order.id)
        .order_by(WorkOrderHistory.id)
    ).all()
    assert [(row.action, row.actor, row.actor_role) for row in rows[2:]] == [
        ("accept", "api:zjj-system", "department_liaison"),
        ("contact", "api:zjj-system", "department_liaison"),
        ("progress", "api:zjj-system", "department_liaison"),
        ("answer", "api:zjj-system", "department_liaison"),
    ]


def test_a_department_objects_with_a_reason_code(
    client: FlaskClient, db: Session, own_token: str
) -> None:
    order = dispatched_order(db, department_code=OWN)

    response = post(
        client,
        f"/work-orders/{order.number}/objection",
        own_token,
        {"reason_code": "not_our_duty", "text": "属于城管职责"},
    )

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "objected"


def test_refused_moves_are_409_and_bad_bodies_400(
    client: FlaskClient, db: Session, own_token: str, platform_token: str
) -> None:
    order = dispatched_order(db, department_code=OWN)
    theirs = dispatched_order(db, department_code=OTHER, summary="别的部门的")
    path = f"/work-orders/{order.number}"

    too_early = post(client, f"{path}/answer", own_token, {"outcome": "办好了"})
    blank = post(client, f"{path}/answer", own_token, {"outcome": "   "})
    missing = post(client, f"{path}/contact", own_token, {})
    unknown_reason = post(client, f"{path}/objection", own_token, {"reason_code": "x", "text": "y"})
    not_json = client.post(
        f"/api/v1{path}/contact",
        headers={**bearer(own_token), "Content-Type": "application/json"},
        data="{not json",
    )
    reader = post(client, f"{path}/accept", platform_token)
    not_ours = post(client, f"/work-orders/{theirs.number}/accept", own_token)

    assert too_early.status_code == 409
    assert too_early.get_json()["error"].startswith("Cannot answer an order that is dispatched")
    assert blank.status_code == 400 and "outcome" in blank.get_json()["errors"]
    assert missing.status_code == 400 and "note" in missing.get_json()["errors"]
    assert unknown_reason.status_code == 400
    assert not_json.status_code == 400 and "body" in not_json.get_json()["errors"]
    assert reader.status_code == 403
    assert not_ours.status_code == 404
    db.expire_all()
    assert db.get(WorkOrder, order.id).state == WorkOrderState.DISPATCHED  # type: ignore[union-attr]


# -- the duty directory ------------------------------------------------------------------------


def test_the_directory_summary(client: FlaskClient, platform_token: str, directory: None) -> None:
    summary = get(client, "/directory", platform_token)

    assert summary["category_count"] == 12
    assert summary["item_count"] == sum(c["item_count"] for c in summary["categories"])
    assert summary["categories"][0]["code"] == "C01"
    assert "城关区" in summary["county_units"]


def test_no_directory_yet_is_a_404(client: FlaskClient, platform_token: str) -> None:
    response = client.get("/api/v1/directory/items", headers=bearer(platform_token))

    assert response.status_code == 404
    assert response.get_json() == {"error": "No duty directory has been imported yet."}


def test_directory_items_are_searched_and_paged_by_code(
    client: FlaskClient, platform_token: str, directory: None
) -> None:
    found = get(client, "/directory/items", platform_token, q="物业", category="C01", limit=3)
    county = get(client, "/directory/items", platform_token, level="township", limit=200)

    assert [item["code"] for item in found["data"]] == ["C01-001", "C01-002", "C01-003"]
    assert found["data"][0]["keywords"][0] == "物业"
    assert found["data"][0]["category_name"] == "城乡建设"
    assert {item["level"] for item in county["data"]} == {"township"}
    rest = get(client, "/directory/items", platform_token, cursor=found["next_cursor"], q="物业")
    assert rest["data"][0]["code"] > "C01-003"
    assert not {i["code"] for i in rest["data"]} & {i["code"] for i in found["data"]}


def test_directory_departments_leave_out_the_liaisons_mobile(
    client: FlaskClient, platform_token: str, directory: None
) -> None:
    page = get(client, "/directory/departments", platform_token, county="城关区", limit=200)

    codes = [department["code"] for department in page["data"]]
    assert OWN in codes and codes == sorted(codes)
    assert set(page["data"][0]) == {"code", "name", "level", "county", "role", "phone_number"}
    assert page["next_cursor"] is None


def test_a_cursor_from_an_older_directory_version_is_a_409(
    client: FlaskClient, db: Session, platform_token: str, directory: None
) -> None:
    first = get(client, "/directory/departments", platform_token, limit=5)
    import_demo_directory(db)  # a new version

    response = client.get(
        "/api/v1/directory/departments",
        headers=bearer(platform_token),
        query_string={"cursor": first["next_cursor"]},
    )

    assert response.status_code == 409
    assert "start again without a cursor" in response.get_json()["error"]


# -- the document -------------------------------------------------------------------------------


def test_the_openapi_document_is_valid_and_names_the_bearer_scheme(client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")  # no token needed to read it

    assert response.status_code == 200
    document = response.get_json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The client's API token.",
    }
    assert document["security"] == [{"bearerAuth": []}]
    assert set(document["paths"]) >= {
        "/api/v1/work-orders",
        "/api/v1/work-orders/{number}",
        "/api/v1/work-orders/{number}/history",
        "/api/v1/work-orders/{number}/accept",
        "/api/v1/work-orders/{number}/answer",
        "/api/v1/directory",
        "/api/v1/directory/items",
        "/api/v1/directory/departments",
    }
    state = next(
        p
        for p in document["paths"]["/api/v1/work-orders"]["get"]["parameters"]
        if p["name"] == "state"
    )
    assert set(state["schema"]["enum"]) == {s.value for s in WorkOrderState}


# -- hotline api-client --------------------------------------------------------------------------


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(main, ["api-client", *args], catch_exceptions=False)


def test_api_client_add_prints_a_working_token_once_then_list_and_deactivate(
    app: Flask, client: FlaskClient, directory: None
) -> None:
    added = run(app, "add", "zjj-system", "--department", OWN)
    token = added.output.strip().splitlines()[-1]

    assert added.exit_code == 0, added.output
    assert f"(department {OWN})" in added.output
    assert client.get("/api/v1/work-orders", headers=bearer(token)).status_code == 200
    listed = run(app, "list")
    assert "zjj-system" in listed.output and OWN in listed.output
    assert token not in listed.output

    assert run(app, "deactivate", "zjj-system").exit_code == 0
    assert client.get("/api/v1/work-orders", headers=bearer(token)).status_code == 401
    assert "(deactivated)" in run(app, "list").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "zjj", "--department", "D-NOWHERE"], "no department 'D-NOWHERE'"),
        (["add", "Bad Name!"], "a name is 2 to 63 characters"),
        (["deactivate", "nobody"], "no API client is called 'nobody'"),
    ],
)
def test_api_client_refusals(app: Flask, directory: None, args: list[str], message: str) -> None:
    result = run(app, *args)

    assert result.exit_code == 1
    assert message in result.output
