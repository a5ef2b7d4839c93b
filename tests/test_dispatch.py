"""The compiled dispatch (calls_api/fastpath/dispatch.py) answers exactly as connexion's chain.

One TestClient serves two apps over the same services: the service as it runs (dispatch on)
and the service with `compiled_dispatch=False`. Every request of the corpus below is sent to
both and the answers (status, headers, body) must be the same; what a create makes anew (its
sid, its times) is masked. Other tests check that the dispatch really serves what it should,
and that a request it hands to connexion is counted against its rate limit once.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from connexion.middleware.routing import RoutingMiddleware
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from calls_api.app import create_app, dispatch_options
from calls_api.fastpath.dispatch import CompiledDispatch, Unsupported, compile_plan
from calls_api.services import Services
from calls_api.settings import Settings
from generated.adapters import ROUTES
from tests.conftest import SEED_REQUEST, AccountKey

VIA = b"x-test-via"
_SID = re.compile(r"\bCA[0-9a-f]{32}\b")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def _both(compiled: Any, chain: Any) -> Any:
    """One ASGI app: the `x-test-via: connexion` header picks the chain, else the dispatch."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            target = compiled if (VIA, b"connexion") not in headers else chain
            scope = {**scope, "headers": [h for h in headers if h[0] != VIA]}
            await target(scope, receive, send)
        else:  # the lifespan: the dispatching app starts and stops the shared services
            await compiled(scope, receive, send)

    return app


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Calls stay where they are made (the engine does not move them on while compared).
    return Settings(database_url=database_url, validate_responses=True, sim_trying_seconds=3600)


@pytest.fixture
def pair(settings: Settings) -> Iterator[TestClient]:
    services = Services(settings)
    compiled = create_app(settings, services)
    chain = create_app(settings.model_copy(update={"compiled_dispatch": False}), services)
    with TestClient(_both(compiled, chain), raise_server_exceptions=False) as client:
        yield client


def _mask(text: str) -> str:
    return _TIME.sub("<time>", _SID.sub("<sid>", text))


def _answer(response: Any) -> tuple[int, list[tuple[str, str]], Any]:
    headers = sorted((k, _mask(v)) for k, v in response.headers.items() if k != "content-length")
    try:
        body: Any = json.loads(_mask(response.text))
    except ValueError:
        body = _mask(response.text)
    return response.status_code, headers, body


def _same(client: TestClient, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    """Send the request both ways; assert the answers match; the status and body."""
    headers = dict(kwargs.pop("headers", {}))
    compiled = client.request(method, url, headers=headers, **kwargs)
    chain = client.request(method, url, headers={**headers, "x-test-via": "connexion"}, **kwargs)
    assert _answer(compiled) == _answer(chain), f"{method} {url}"
    return compiled.status_code, _answer(compiled)[2]


def _create(client: TestClient, account: AccountKey) -> str:
    response = client.post(
        f"/v1/Accounts/{account.account_sid}/Calls", json=SEED_REQUEST, headers=account.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["call_sid"])


def test_every_operation_of_the_spec_is_compiled(settings: Settings) -> None:
    dispatch = CompiledDispatch(_nothing, **dispatch_options(settings))
    assert dispatch.unsupported == {}
    compiled = {plan.operation_id for plans in dispatch.plans.values() for plan in plans}
    assert compiled == set(ROUTES)


async def _nothing(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("not reached")


def test_reads_answer_the_same(pair: TestClient, account: AccountKey) -> None:
    sid = _create(pair, account)
    base = f"/v1/Accounts/{account.account_sid}/Calls"
    auth = account.headers
    cases: list[tuple[str, dict[str, Any]]] = [
        (f"{base}/{sid}", {"headers": auth}),
        (f"{base}/{sid}/Events", {"headers": auth}),
        (f"{base}/CA{'0' * 32}", {"headers": auth}),  # no such call: 404
        (f"{base}/CA123", {"headers": auth}),  # bad sid: 400
        (f"/v1/Accounts/AC123/Calls/{sid}", {"headers": auth}),
        (f"/v1/Accounts/AC{'1' * 32}/Calls/{sid}", {"headers": auth}),  # another account: 403
        (f"{base}/{sid}", {}),  # no key
        (f"{base}/{sid}", {"headers": {"Authorization": "Basic eDp5"}}),
        (f"{base}/{sid}", {"headers": {"Authorization": "Bearer"}}),
        (f"{base}/{sid}", {"headers": {"Authorization": "Bearer not-a-key"}}),
        (f"{base}/{sid}", {"headers": {"Authorization": "bearer   " + account.key}}),
        (f"{base}/{sid}", {"headers": {"Authorization": f"Bearer {account.key}x"}}),
        (f"{base}/{sid}?extra=1", {"headers": auth}),  # strict: unknown query parameter
        (base, {"headers": auth}),
        (base + "/", {"headers": auth}),
        (f"{base}?status=queued&page_size=1", {"headers": auth}),
        (f"{base}?callStatus=trying&from=%2B15550000000", {"headers": auth}),
        (f"{base}?to=%2B15550000001&direction=outbound", {"headers": auth}),
        (f"{base}?created_after=2020-01-01T00:00:00Z", {"headers": auth}),
        (f"{base}?created_before=yesterday", {"headers": auth}),
        (f"{base}?page_size=abc", {"headers": auth}),
        (f"{base}?page_size=0", {"headers": auth}),
        (f"{base}?page_size=5000", {"headers": auth}),
        (f"{base}?page_size=1&page_size=2", {"headers": auth}),  # repeated
        (f"{base}?status=", {"headers": auth}),
        (f"{base}?status=nope", {"headers": auth}),
        (f"{base}?page_token=zzz", {"headers": auth}),
        (f"{base}?page%5Bsize%5D=1", {"headers": auth}),
        ("/v1/health", {}),
        ("/v1/ready", {}),
        ("/v1/health?x=1", {}),
    ]
    statuses = set()
    for url, kwargs in cases:
        status, _ = _same(pair, "GET", url, **kwargs)
        statuses.add(status)
    assert {200, 400, 401, 403, 404} <= statuses
    for method in ("HEAD", "PATCH", "OPTIONS"):
        _same(pair, method, f"{base}/{sid}", headers=auth)


BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("not JSON", {"content": b"{", "headers": {"Content-Type": "application/json"}}),
    ("empty", {"content": b"", "headers": {"Content-Type": "application/json"}}),
    ("null", {"content": b"null", "headers": {"Content-Type": "application/json"}}),
    ("a list", {"json": [SEED_REQUEST]}),
    ("NaN", {"content": b'{"to": NaN}', "headers": {"Content-Type": "application/json"}}),
    (
        "a lone surrogate",
        {"content": b'{"from": "\\ud800"}', "headers": {"Content-Type": "application/json"}},
    ),
    ("BOM", {"content": b"\xef\xbb\xbf{}", "headers": {"Content-Type": "application/json"}}),
    ("Latin-1", {"content": b'{"from": "\xe9"}', "headers": {"Content-Type": "application/json"}}),
    (
        "text/plain",
        {"content": json.dumps(SEED_REQUEST), "headers": {"Content-Type": "text/plain"}},
    ),
    ("no content type", {"content": json.dumps(SEED_REQUEST).encode()}),
    ("missing to", {"json": {k: v for k, v in SEED_REQUEST.items() if k != "to"}}),
    ("unknown field", {"json": {**SEED_REQUEST, "colour": "blue"}}),
    ("wrong type", {"json": {**SEED_REQUEST, "timeout": "soon"}}),
    ("wide integer", {"json": {**SEED_REQUEST, "tag": {"n": 2**70}}}),
]


@pytest.mark.parametrize(("what", "kwargs"), BAD_BODIES, ids=[what for what, _ in BAD_BODIES])
def test_bad_creates_answer_the_same(
    pair: TestClient, account: AccountKey, what: str, kwargs: dict[str, Any]
) -> None:
    headers = {**account.headers, **kwargs.pop("headers", {})}
    base = f"/v1/Accounts/{account.account_sid}/Calls"
    status, _ = _same(pair, "POST", base, headers=headers, **kwargs)
    assert 400 <= status < 500 or what in ("wide integer", "unknown field", "Latin-1")


def test_creates_and_changes_answer_the_same(pair: TestClient, account: AccountKey) -> None:
    base = f"/v1/Accounts/{account.account_sid}/Calls"
    auth = account.headers
    assert _same(pair, "POST", base, json=SEED_REQUEST, headers=auth)[0] == 201
    jambonz = {
        "from": "+15550000000",
        "to": {"type": "phone", "number": "+15550000001"},
        "call_hook": {"url": "https://example.com/answer"},
        "call_status_hook": "https://example.com/events",
    }
    assert _same(pair, "POST", base, json=jambonz, headers=auth)[0] == 201
    charset = {**auth, "Content-Type": "application/json; charset=utf-8"}
    assert _same(pair, "POST", base, content=json.dumps(SEED_REQUEST), headers=charset)[0] == 201
    for key in ("", "x" * 256, "has space"):
        _same(pair, "POST", base, json=SEED_REQUEST, headers={**auth, "Idempotency-Key": key})
    # A keyed create: the first of each path makes a call, its repeat returns it.
    for via in ("dispatch", "chain"):
        headers = {**auth, "Idempotency-Key": f"key-{via}"}
        if via == "chain":
            headers["x-test-via"] = "connexion"
        first = pair.post(base, json=SEED_REQUEST, headers=headers)
        again = pair.post(base, json=SEED_REQUEST, headers=headers)
        assert first.status_code == 201
        assert again.json()["call_sid"] == first.json()["call_sid"]
        assert _answer(again)[0] == _answer(first)[0]
    # Each change is made to a call of its own, one per path, from the same state.
    for method, body, suffix in [
        ("PUT", {"status": "completed"}, ""),
        ("POST", {"call_status": "no-answer"}, ""),
        ("PUT", {"status": "ringing"}, ""),
        ("PUT", {}, ""),
        ("DELETE", None, ""),
    ]:
        compiled_sid, chain_sid = _create(pair, account), _create(pair, account)
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        compiled = pair.request(method, f"{base}/{compiled_sid}{suffix}", headers=auth, **kwargs)
        chain = pair.request(
            method,
            f"{base}/{chain_sid}{suffix}",
            headers={**auth, "x-test-via": "connexion"},
            **kwargs,
        )
        assert _answer(compiled) == _answer(chain), (method, body)


def test_the_dispatch_serves_what_passes_and_connexion_the_rest(
    pair: TestClient, account: AccountKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached: list[str] = []
    original = RoutingMiddleware.__call__

    async def counting(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            reached.append(f"{scope['method']} {scope['path']}")
        await original(self, scope, receive, send)

    # connexion's chain starts with its routing: count what gets there.
    monkeypatch.setattr(RoutingMiddleware, "__call__", counting)
    sid = _create(pair, account)
    base = f"/v1/Accounts/{account.account_sid}/Calls"
    assert pair.get(f"{base}/{sid}", headers=account.headers).status_code == 200
    assert pair.get(f"{base}?status=queued", headers=account.headers).status_code == 200
    assert pair.get("/v1/health").status_code == 200
    assert reached == []
    assert pair.get(f"{base}/{sid}?extra=1", headers=account.headers).status_code == 400
    bad = {**account.headers, "Content-Type": "application/json"}
    assert pair.post(base, content=b"{", headers=bad).status_code == 400
    assert reached == [f"GET {base}/{sid}", f"POST {base}"]


def test_a_request_handed_on_is_counted_once(
    database_url: str, account: AccountKey, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(database_url=database_url, rate_limit_per_key=3, rate_limit_per_account=0)
    base = f"/v1/Accounts/{account.account_sid}/Calls"
    bad = {**account.headers, "Content-Type": "application/json"}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        # The dispatch counts the key, then hands the bad body on: connexion's answer, and
        # no second count (else the second of these would be the 429).
        assert [client.post(base, content=b"{", headers=bad).status_code for _ in range(2)] == [
            400,
            400,
        ]
        # A failing parameter is handed on before the key is checked: counted by connexion.
        assert client.get(f"{base}?page_size=0", headers=account.headers).status_code == 400
        with caplog.at_level(logging.INFO, logger="calls_api.access"):
            refused = client.get(base, headers=account.headers)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert "Retry-After" in refused.headers
    # The access log names the operation of a request refused by the key check.
    assert any(
        "GET /v1/Accounts/{account_sid}/Calls 429" in record.getMessage()
        for record in caplog.records
    )


async def _adapter(thing: str, colour: str | None = None, token_info: Any = None) -> Any:
    raise AssertionError("not called")


async def _takes_anything(**kwargs: Any) -> Any:
    raise AssertionError("not called")


THING = {"name": "thing", "in": "path", "required": True, "schema": {"type": "string"}}
COLOUR = {"name": "colour", "in": "query", "schema": {"type": "string"}}


def _operation(**changes: Any) -> Any:
    body = changes.pop("request_body", {})
    fields: dict[str, Any] = {
        "operation_id": "getThing",
        "path": "/things/{thing}",
        "security": [{"bearer": []}],
        "parameters": [THING, COLOUR],
        "is_request_body_defined": bool(body),
        "consumes": list(body.get("content", {})),
        "request_body": body,
        "body_name": lambda _type: body.get("x-body-name", "body"),
        "body_definition": lambda _type=None: body.get("content", {}).get(_type, {}),
        "body_schema": lambda _type=None: body.get("content", {}).get(_type, {}).get("schema", {}),
    }
    fields.update(changes)
    return SimpleNamespace(**fields)


def test_a_plain_operation_compiles() -> None:
    plan = compile_plan(_operation(), "/v1", _adapter, str)
    assert plan.pattern.fullmatch("/v1/things/abc") is not None
    assert plan.pattern.fullmatch("/v1/things/a/b") is None
    assert plan.bearer and plan.takes_token_info and set(plan.query_params) == {"colour"}


@pytest.mark.parametrize(
    ("what", "operation", "adapter"),
    [
        (
            "an array",
            _operation(parameters=[THING, {**COLOUR, "schema": {"type": "array"}}]),
            _adapter,
        ),
        ("a cookie", _operation(parameters=[THING, {**COLOUR, "in": "cookie"}]), _adapter),
        (
            "a nullable value",
            _operation(
                parameters=[THING, {**COLOUR, "schema": {"type": "string", "nullable": True}}]
            ),
            _adapter,
        ),
        ("a style", _operation(parameters=[THING, {**COLOUR, "style": "form"}]), _adapter),
        (
            "an integer in the path",
            _operation(parameters=[{**THING, "schema": {"type": "integer"}}]),
            _adapter,
        ),
        ("a choice of keys", _operation(security=[{"bearer": []}, {"basic": []}]), _adapter),
        ("**kwargs", _operation(), _takes_anything),
        (
            "an optional body",
            _operation(
                request_body={"content": {"application/json": {"schema": {"type": "object"}}}}
            ),
            _adapter,
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_what_plans_do_not_cover_is_left_to_connexion(
    what: str, operation: Any, adapter: Any
) -> None:
    with pytest.raises(Unsupported):
        compile_plan(operation, "/v1", adapter, str)


def test_odd_framing_and_paths_answer_the_same(pair: TestClient, account: AccountKey) -> None:
    base = f"/v1/Accounts/{account.account_sid}/Calls"
    sid = _create(pair, account)
    body = json.dumps(SEED_REQUEST).encode()
    auth = ("Authorization", f"Bearer {account.key}")
    two_types = [auth, ("Content-Type", "text/plain"), ("Content-Type", "application/json")]
    answers = []
    for via in ([], [("x-test-via", "connexion")]):
        answers.append(_answer(pair.post(base, content=body, headers=[*two_types, *via])))
    assert answers[0] == answers[1]
    assert answers[0][0] == 415  # the first Content-Type counts
    # Starlette's routes never match a path with a newline in it: neither does the dispatch.
    for url in (
        f"/v1/Accounts/{account.account_sid}%0A/Calls",
        f"{base}/{sid}%0A",
        f"{base}/{sid}%0A/Events",
    ):
        assert _same(pair, "GET", url, headers=account.headers)[0] == 404
    assert _same(pair, "POST", f"{base}%0A", json=SEED_REQUEST, headers=account.headers)[0] == 404


@pytest.mark.parametrize("compiled_dispatch", [True, False])
def test_a_refused_key_never_reads_the_body(
    database_url: str, account: AccountKey, compiled_dispatch: bool
) -> None:
    settings = Settings(database_url=database_url, compiled_dispatch=compiled_dispatch)
    body = json.dumps(SEED_REQUEST).encode()
    reads: list[str] = []
    sent: list[Message] = []

    async def receive() -> Message:
        reads.append("body")  # with Expect: 100-continue, this is what asks for the upload
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    app = create_app(settings)
    with TestClient(app) as client:  # runs the lifespan
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": f"/v1/Accounts/{account.account_sid}/Calls",
            "raw_path": f"/v1/Accounts/{account.account_sid}/Calls".encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"testserver"),
                (b"authorization", b"Bearer ck_nope.nope"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"expect", b"100-continue"),
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 80),
            "state": {},
        }

        async def request() -> None:
            await app(scope, receive, send)

        assert client.portal is not None
        client.portal.call(request)
    assert sent[0]["status"] == 401
    assert reads == []
