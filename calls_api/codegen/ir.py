"""The intermediate model of the API: what the templates render, derived from the spec once.

Templates get data, not logic: every decision about names, types, result kinds and
headers is made here, so the server code (and later the client and docs) agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from connexion.decorators.parameter import pythonic

from calls_api.codegen.spec_source import SpecError

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# Success status -> the typed result a handler returns for it (calls_api.results).
RESULT_KINDS = {200: "Ok", 201: "Created", 202: "Accepted", 204: "NoContent"}

# Path parameter whose value must be the caller's own account (403 otherwise).
ACCOUNT_PARAM = "account_sid"

_SCALAR_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}


@dataclass(frozen=True)
class Param:
    """One path or query parameter as connexion hands it to the adapter."""

    name: str  # as in the spec
    py_name: str  # as connexion passes it (pythonic_params)
    location: str  # path | query
    annotation: str
    required: bool

    @property
    def argument(self) -> str:
        """How the adapter hands the parameter to the handler."""
        if self.location == "header":
            return f'runtime.header("{self.name}")'
        return self.py_name

    @property
    def declaration(self) -> str:
        """The parameter as Python declares it; optional ones default to None."""
        optional = "" if self.required else " | None = None"
        return f"{self.py_name}: {self.annotation}{optional}"


@dataclass(frozen=True)
class Operation:
    """One operation, with everything the adapter, contract and stubs need."""

    operation_id: str
    name: str
    tag: str
    module: str
    method: str
    path: str
    summary: str
    params: tuple[Param, ...]
    body_model: str | None
    body_required: bool
    status: int
    result_kind: str
    result_type: str  # the result's body type, e.g. "models.Call"; "None" when there is none
    response_headers: tuple[str, ...]
    secured: bool
    account_param: str | None
    error_statuses: tuple[int, ...]

    @property
    def context_type(self) -> str:
        return "AccountContext" if self.secured else "Context"

    @property
    def signature_params(self) -> tuple[str, ...]:
        """The operation's own parameters as Python parameters: required ones first."""
        required = [p.declaration for p in self.params if p.required]
        optional = [p.declaration for p in self.params if not p.required]
        if self.body_model and self.body_required:
            required.append(f"body: models.{self.body_model}")
        elif self.body_model:
            optional.append(f"body: models.{self.body_model} | None = None")
        return (*required, *optional)

    @property
    def adapter_params(self) -> tuple[str, ...]:
        """What connexion passes the adapter: parameters, the raw body, the token info.

        connexion passes path and query parameters; the adapter reads headers itself.
        """
        params = [p.declaration for p in self.params if p.location != "header"]
        if self.body_model:
            params.append("body: Any = None")
        if self.secured:
            params.append("token_info: dict[str, Any] | None = None")
        return tuple(params)

    @property
    def query_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.location == "query")

    @property
    def query_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.query_params)

    @property
    def header_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.location == "header")

    @property
    def client_positional(self) -> tuple[str, ...]:
        """A client method's positional parameters: the path, then a required body."""
        params = [p.declaration for p in self.params if p.location == "path"]
        if self.body_model and self.body_required:
            params.append(f"body: models.{self.body_model}")
        return tuple(params)

    @property
    def client_keywords(self) -> tuple[str, ...]:
        """A client method's keyword-only parameters: query and header parameters."""
        params = [p.declaration for p in self.params if p.location != "path"]
        if self.body_model and not self.body_required:
            params.append(f"body: models.{self.body_model} | None = None")
        return tuple(params)

    @property
    def client_path(self) -> str:
        """The path as an f-string body over the method's parameters, each segment quoted."""
        return re.sub(
            r"\{([^}]+)\}", lambda m: "{_segment(" + pythonic(m.group(1)) + ")}", self.path
        )

    @property
    def client_result(self) -> str:
        return self.result_type

    @property
    def handler_result(self) -> str:
        if self.result_kind == "NoContent":
            return "NoContent"
        return f"{self.result_kind}[{self.result_type}]"


@dataclass(frozen=True)
class Tag:
    """A group of operations: one handler module and one Protocol."""

    name: str
    module: str
    protocol: str
    operations: tuple[Operation, ...]


@dataclass(frozen=True)
class Api:
    """The whole API as the generators see it."""

    title: str
    version: str
    base_path: str
    tags: tuple[Tag, ...]
    operations: tuple[Operation, ...] = field(default=())


def build_api(spec: dict[str, Any]) -> Api:
    """Derive the intermediate model from a validated spec."""
    base_path = _base_path(spec)
    default_security = spec.get("security", [])
    operations: list[Operation] = []
    for path, item in spec.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method in HTTP_METHODS:
            if method not in item:
                continue
            try:
                operations.append(
                    _operation(
                        spec, base_path, path, method, item[method], shared, default_security
                    )
                )
            except SpecError as exc:
                raise SpecError(str(exc), pointer=("paths", path, method)) from exc
    seen: dict[str, str] = {}
    for op in operations:
        if op.name in seen:
            raise SpecError(
                f"operationIds {seen[op.name]!r} and {op.operation_id!r} "
                f"both become the Python name {op.name!r}"
            )
        seen[op.name] = op.operation_id
    tags: dict[str, list[Operation]] = {}
    for op in operations:
        tags.setdefault(op.tag, []).append(op)
    return Api(
        title=str(spec["info"]["title"]),
        version=str(spec["info"]["version"]),
        base_path=base_path,
        tags=tuple(
            Tag(
                name=name,
                module=_module_name(name),
                protocol=f"{_class_name(name)}Handlers",
                operations=tuple(ops),
            )
            for name, ops in tags.items()
        ),
        operations=tuple(operations),
    )


def _operation(
    spec: dict[str, Any],
    base_path: str,
    path: str,
    method: str,
    raw: dict[str, Any],
    shared_params: list[dict[str, Any]],
    default_security: list[Any],
) -> Operation:
    where = f"{method.upper()} {path}"
    operation_id = raw.get("operationId")
    if not operation_id:
        raise SpecError(f"{where}: every operation needs an operationId")
    tags = raw.get("tags") or []
    if not tags:
        raise SpecError(f"{where}: every operation needs a tag (it names the handler module)")
    params = _params(spec, shared_params, raw.get("parameters", []))
    body_model, body_required = _body(spec, raw, where)
    status, response = _success(spec, raw, where)
    result_kind = RESULT_KINDS[status]
    headers = tuple(sorted(_resolve(spec, response).get("headers", {})))
    if result_kind == "Created" and "Location" not in headers:
        raise SpecError(f"{where}: a 201 response must declare a Location header")
    security = raw.get("security", default_security)
    secured = any(requirement for requirement in security)
    account_param = (
        ACCOUNT_PARAM
        if secured and any(p.name == ACCOUNT_PARAM and p.location == "path" for p in params)
        else None
    )
    return Operation(
        operation_id=operation_id,
        name=pythonic(operation_id),
        tag=tags[0],
        module=_module_name(tags[0]),
        method=method.upper(),
        path=base_path + path,
        summary=str(raw.get("summary", "")),
        params=params,
        body_model=body_model,
        body_required=body_required,
        status=status,
        result_kind=result_kind,
        result_type=_response_type(spec, response),
        response_headers=headers,
        secured=secured,
        account_param=account_param,
        error_statuses=tuple(sorted(int(code) for code in raw["responses"] if int(code) >= 400)),
    )


def _params(
    spec: dict[str, Any], shared: list[dict[str, Any]], own: list[dict[str, Any]]
) -> tuple[Param, ...]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*shared, *own]:
        param = _resolve(spec, raw)
        merged[(param["name"], param["in"])] = param
    result = []
    for (name, location), param in merged.items():
        if location not in ("path", "query", "header"):
            continue  # cookies stay with the framework
        schema = _resolve(spec, param.get("schema", {}))
        result.append(
            Param(
                name=name,
                py_name=pythonic(name),
                location=location,
                annotation=_annotation(spec, schema),
                required=bool(param.get("required", location == "path")),
            )
        )
    # Required first, so the generated signatures are valid Python.
    return tuple(sorted(result, key=lambda p: not p.required))


def _body(spec: dict[str, Any], raw: dict[str, Any], where: str) -> tuple[str | None, bool]:
    if "requestBody" not in raw:
        return None, False
    body = _resolve(spec, raw["requestBody"])
    content = body.get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if not schema or "$ref" not in schema:
        raise SpecError(f"{where}: the request body must be application/json with a $ref schema")
    return _ref_name(schema["$ref"]), bool(body.get("required", False))


def _success(spec: dict[str, Any], raw: dict[str, Any], where: str) -> tuple[int, dict[str, Any]]:
    successes = sorted(int(code) for code in raw["responses"] if str(code).startswith("2"))
    if len(successes) != 1 or successes[0] not in RESULT_KINDS:
        raise SpecError(
            f"{where}: exactly one success response is supported, one of "
            f"{sorted(RESULT_KINDS)}; found {successes}"
        )
    return successes[0], _resolve(spec, raw["responses"][str(successes[0])])


def _response_type(spec: dict[str, Any], response: dict[str, Any]) -> str:
    content = response.get("content", {})
    if not content:
        return "None"
    schema = content.get("application/json", {}).get("schema")
    if schema is None:
        raise SpecError("a success response must be application/json")
    return _annotation(spec, schema)


def _annotation(spec: dict[str, Any], schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        target = _resolve(spec, schema)
        if target.get("type") == "object" or "properties" in target:
            return f"models.{_ref_name(schema['$ref'])}"
        return _annotation(spec, target)
    kind = schema.get("type")
    if kind == "array":
        return f"list[{_annotation(spec, schema.get('items', {}))}]"
    if kind in _SCALAR_TYPES:
        return _SCALAR_TYPES[kind]
    return "Any"


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise SpecError(f"only local references are supported, found {ref!r}")
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
        seen += 1
        if seen > 32:
            raise SpecError(f"reference cycle at {ref!r}")
    return node


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _base_path(spec: dict[str, Any]) -> str:
    servers = spec.get("servers") or [{"url": ""}]
    url = str(servers[0].get("url", ""))
    path = re.sub(r"^[a-z]+://[^/]+", "", url)
    return path.rstrip("/")


def _module_name(tag: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", tag.lower()).strip("_")


def _class_name(tag: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", tag) if part)
