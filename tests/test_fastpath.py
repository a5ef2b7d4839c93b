"""calls_api.fastpath: what it relies on in connexion is still there, and answers are the
same with it as connexion's own code gives."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import connexion
import connexion.context as connexion_context
import connexion.security
import connexion.uri_parsing
import connexion.utils
import connexion.validators.abstract
import connexion.validators.json
import pytest
from connexion.apps.asynchronous import AsyncOperation
from connexion.decorators import main as decorators
from connexion.decorators import parameter as parameter_module
from connexion.decorators import response as response_module
from connexion.frameworks import starlette as starlette_framework
from connexion.middleware import context as context_module
from connexion.middleware import main as main_module
from connexion.middleware import request_validation, swagger_ui
from connexion.middleware import routing as routing_module
from connexion.validators.parameter import ParameterValidator
from starlette.routing import Host, Mount, Route, Router
from starlette.testclient import TestClient

from calls_api import fastpath
from calls_api.app import VALIDATORS
from calls_api.settings import Settings
from tests.conftest import SEED_REQUEST, AccountKey, serving

# The connexion code fastpath replaces or wraps, as it was when fastpath was written. An
# upgrade that changes any of it fails here: read the new code, check that each of
# fastpath's changes still only moves work, then update the digests (and this version).
WRITTEN_FOR = "3.3.0"
REPLACED: dict[str, tuple[Callable[[], Any], str]] = {
    "ASGIDecorator.__call__": (
        lambda: fastpath._ORIGINAL_ASGI_CALL,
        "7397ac94437e4d7e",
    ),
    "AsyncOperation.fn": (lambda: fastpath._ORIGINAL_FN.fget, "9cad70e32840c9ec"),
    "ParameterValidator.validate_parameter": (
        lambda: ParameterValidator.validate_parameter,
        "2d9293659a1c1ea5",
    ),
    "security.inspect_function_arguments": (
        lambda: fastpath._cached_inspect.__wrapped__,
        "1359001a695ff9f6",
    ),
    "parameter.pythonic": (lambda: fastpath._cached_pythonic.__wrapped__, "70c5c689dec99744"),
    "BaseParameterDecorator.__init__": (
        lambda: parameter_module.BaseParameterDecorator.__init__,
        "a2ab5462f60aa23a",
    ),
    "AbstractSecurityHandler._accepts_kwarg": (
        lambda: connexion.security.AbstractSecurityHandler._accepts_kwarg,
        "f04f41d0fb5eea37",
    ),
    "BaseDecorator.decorate": (lambda: decorators.BaseDecorator.decorate, "ecc6529a18274fda"),
    "BaseDecorator.uri_parser": (
        lambda: decorators.BaseDecorator.uri_parser.fget,
        "140072be21d36da0",
    ),
    "SwaggerUIMiddleware.__call__": (lambda: fastpath._ORIGINAL_SWAGGER_CALL, "63d1a07033fd923d"),
    "SwaggerUIMiddleware.default_fn": (
        lambda: swagger_ui.SwaggerUIMiddleware.default_fn,
        "0159a88e2d16bcb8",
    ),
    "connexion.context": (lambda: connexion_context, "78d2febf92c2637f"),
    "RequestValidationOperation.__call__": (
        lambda: fastpath._ORIGINAL_VALIDATION_CALL,
        "af472716211911b9",
    ),
    # Built once and reused: they must keep no state of a request.
    "ParameterValidator": (lambda: ParameterValidator, "d338ed9bea35a31c"),
    "AbstractRequestBodyValidator": (
        lambda: connexion.validators.abstract.AbstractRequestBodyValidator,
        "bd67e82656ee4831",
    ),
    "JSONRequestBodyValidator": (
        lambda: connexion.validators.json.JSONRequestBodyValidator,
        "05450b89d022b098",
    ),
    # What the compiled dispatch (fastpath/dispatch.py) does as connexion's chain does: how
    # parameters are parsed, coerced and passed, how the key is checked and what it leaves in
    # the context, what routing and the context layer record, and the order of the layers.
    "parameter.AsyncParameterDecorator": (
        lambda: parameter_module.AsyncParameterDecorator,
        "79513a75ad0d4ccc",
    ),
    "parameter.prep_kwargs": (lambda: parameter_module.prep_kwargs, "46eb57dd9685e1c4"),
    "parameter.get_arguments": (lambda: parameter_module.get_arguments, "b2912a96f0107039"),
    "parameter._get_path_arguments": (
        lambda: parameter_module._get_path_arguments,
        "dce2f42b8282c286",
    ),
    "parameter._get_val_from_param": (
        lambda: parameter_module._get_val_from_param,
        "23ae7326c64a85ea",
    ),
    "parameter._get_query_arguments": (
        lambda: parameter_module._get_query_arguments,
        "77f3e0a63d78d965",
    ),
    "parameter._get_query_defaults": (
        lambda: parameter_module._get_query_defaults,
        "e8c78eeae75a9e2b",
    ),
    "parameter._query_args_helper": (
        lambda: parameter_module._query_args_helper,
        "272f1cd04f9d1145",
    ),
    "parameter._get_body_argument": (
        lambda: parameter_module._get_body_argument,
        "ad0202326b99a5b7",
    ),
    "parameter._get_body_argument_json": (
        lambda: parameter_module._get_body_argument_json,
        "848df9bf9c63aa3e",
    ),
    "AsyncResponseDecorator": (lambda: response_module.AsyncResponseDecorator, "6577fb0569fb62f5"),
    "utils.coerce_type": (lambda: connexion.utils.coerce_type, "802d7bd3ca28f106"),
    "OpenAPIURIParser": (lambda: connexion.uri_parsing.OpenAPIURIParser, "b2ace408b1b5907e"),
    "AbstractURIParser.resolve_params": (
        lambda: connexion.uri_parsing.AbstractURIParser.resolve_params,
        "cd5c04e13032a24c",
    ),
    "AbstractSecurityHandler": (
        lambda: connexion.security.AbstractSecurityHandler,
        "7eadce8ab4af5faf",
    ),
    "BearerSecurityHandler": (lambda: connexion.security.BearerSecurityHandler, "bbed0f138167f2ff"),
    "SecurityHandlerFactory.verify_security": (
        lambda: connexion.security.SecurityHandlerFactory.verify_security,
        "eb34fea712e0643a",
    ),
    "SecurityHandlerFactory._raise_most_specific": (
        lambda: connexion.security.SecurityHandlerFactory._raise_most_specific,
        "31c57164202788f8",
    ),
    "RoutingOperation": (lambda: routing_module.RoutingOperation, "d8bb556a5a81b13c"),
    "ContextOperation": (lambda: context_module.ContextOperation, "e6a0d79df818fc45"),
    "ConnexionMiddleware": (lambda: main_module.ConnexionMiddleware, "0901bb0e980a503d"),
    "starlettify_path": (lambda: starlette_framework.starlettify_path, "af84a07682d2c29f"),
}


def _digest(function: Any) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def test_connexion_is_the_version_fastpath_was_written_for() -> None:
    assert version("connexion") == WRITTEN_FOR


@pytest.mark.parametrize("name", sorted(REPLACED))
def test_the_connexion_code_fastpath_changes_is_unchanged(name: str) -> None:
    function, digest = REPLACED[name]
    assert _digest(function()) == digest, f"connexion's {name} changed: review calls_api/fastpath"


def test_install_puts_every_change_in_place() -> None:
    fastpath.install()
    assert decorators.ASGIDecorator.__call__ is fastpath._decorate_once
    assert isinstance(AsyncOperation.fn, property)
    assert AsyncOperation.fn.fget is fastpath._operation_fn
    assert connexion.security.inspect_function_arguments is fastpath._cached_inspect
    assert parameter_module.pythonic is fastpath._cached_pythonic
    assert VALIDATORS["parameter"] is fastpath.CachedParameterValidator
    assert swagger_ui.SwaggerUIMiddleware.__call__ is fastpath._swagger_ui_call
    assert request_validation.RequestValidationOperation.__call__ is fastpath._validate_request


async def _nothing(*_args: Any) -> None:
    return None


def test_swagger_prefixes_cover_every_route_and_give_up_on_unknown_kinds() -> None:
    inner = Router(routes=[Route("/openapi.json", _nothing), Mount("/ui", app=_nothing)])
    router = Router(routes=[Mount("/v1", app=inner)])
    assert fastpath._prefixes(router) == ["/v1/openapi.json", "/v1/ui"]
    assert fastpath._prefixes(Router(routes=[Route("/a/{x}/b", _nothing)])) == ["/a/"]
    assert fastpath._prefixes(Router(routes=[Host("example.com", app=_nothing)])) is None


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/openapi.json", 200),
        ("/v1/openapi.yaml", 200),
        ("/v1/ui/", 200),
        ("/v1/ui", 200),  # redirected to /v1/ui/ by the Swagger UI router, as before
        ("/v1/health", 200),
        ("/v1/nothing-here", 404),
    ],
)
def test_swagger_ui_and_api_paths_answer_as_before(
    client: TestClient, path: str, status: int
) -> None:
    assert client.get(path).status_code == status


def test_each_operation_is_decorated_once(
    settings: Settings, account: AccountKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    decorated: list[str] = []
    original = decorators.BaseDecorator.decorate

    def counting(self: Any, function: Any) -> Any:
        decorated.append(function.__name__)
        return original(self, function)

    monkeypatch.setattr(decorators.BaseDecorator, "decorate", counting)
    base = f"/v1/Accounts/{account.account_sid}/Calls"
    # connexion's own chain (the compiled dispatch would serve these without it).
    with serving(settings.model_copy(update={"compiled_dispatch": False})) as client:
        created = [client.post(base, json=SEED_REQUEST, headers=account.headers) for _ in range(3)]
        assert [r.status_code for r in created] == [201, 201, 201]
        for response in created:
            got = client.get(f"{base}/{response.json()['call_sid']}", headers=account.headers)
            assert got.status_code == 200
    assert sorted(decorated) == ["create_call", "get_call"]


PARAM = {
    "name": "account_sid",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^AC[0-9a-f]{32}$"},
}
NULLABLE = {"name": "x", "in": "query", "schema": {"type": "integer", "nullable": True}}


@pytest.mark.parametrize(
    ("param", "value"),
    [
        (PARAM, "AC" + "0" * 32),
        (PARAM, "AC123"),
        (PARAM, ""),
        (PARAM, None),
        (NULLABLE, "null"),
        (NULLABLE, None),
        (NULLABLE, "seven"),
        ({"name": "n", "in": "query", "schema": {"type": "integer", "minimum": 1}}, 0),
    ],
)
def test_cached_parameter_validator_answers_as_connexions(
    param: dict[str, Any], value: Any
) -> None:
    ours = fastpath.CachedParameterValidator([param], uri_parser=None)
    theirs = ParameterValidator([param], uri_parser=None)
    for _ in range(2):  # the first call compiles, the second uses the cache
        assert ours.validate_parameter(param["in"], value, param) == theirs.validate_parameter(
            param["in"], value, param
        )


def test_bad_path_parameter_is_the_same_400(client: TestClient, account: AccountKey) -> None:
    response = client.get("/v1/Accounts/AC123/Calls/CA123", headers=account.headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "does not match" in response.json()["detail"]


def test_content_types_answer_as_before(client: TestClient, account: AccountKey) -> None:
    # One app, so the validators kept from one request serve the next.
    sequence = [
        ("application/json", 201),
        ("text/plain", 415),
        ("application/json; charset=utf-8", 201),
        ("application/x-www-form-urlencoded", 415),
        ("application/json", 201),
    ]
    for content_type, status in sequence:
        response = client.post(
            f"/v1/Accounts/{account.account_sid}/Calls",
            content=json.dumps(SEED_REQUEST),
            headers={**account.headers, "Content-Type": content_type},
        )
        assert response.status_code == status, (content_type, response.text)
        if status != 201:
            assert response.headers["content-type"] == "application/problem+json"
    bad = client.post(
        f"/v1/Accounts/{account.account_sid}/Calls",
        content=b'{"from": "+1555"}',
        headers={**account.headers, "Content-Type": "application/json"},
    )
    assert bad.status_code == 400
    assert "'to' is a required property" in bad.json()["detail"]
