"""(b) Bare Starlette + pydantic: routes, a header check and model_validate_json."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.apps.common import (
    PROBLEM_JSON,
    account_context,
    invalid_body,
    lifespan_of,
    make_services,
    problem_parts,
)
from calls_api.problems import Problem
from generated import models
from handlers import calls

services = make_services()


def _problem(request: Request, problem: Problem) -> Response:
    body, status, headers = problem_parts(problem, request.url.path)
    return Response(body, status, headers=headers, media_type=PROBLEM_JSON)


async def create_call(request: Request) -> Response:
    account_sid = request.path_params["account_sid"]
    try:
        ctx = await account_context(services, request.headers.get("authorization"), account_sid)
        try:
            body = models.CallCreate.model_validate_json(await request.body())
        except ValidationError as exc:
            raise invalid_body(exc.errors(include_url=False)) from exc
        result = await calls.create_call(
            ctx,
            account_sid=account_sid,
            body=body,
            idempotency_key=request.headers.get("idempotency-key"),
        )
    except Problem as problem:
        return _problem(request, problem)
    return Response(
        result.body.model_dump_json(by_alias=True),
        201,
        headers={"Location": result.location},
        media_type="application/json",
    )


async def get_call(request: Request) -> Response:
    account_sid = request.path_params["account_sid"]
    try:
        ctx = await account_context(services, request.headers.get("authorization"), account_sid)
        result = await calls.get_call(ctx, account_sid, request.path_params["call_sid"])
    except Problem as problem:
        return _problem(request, problem)
    return Response(result.body.model_dump_json(by_alias=True), media_type="application/json")


app = Starlette(
    routes=[
        Route("/v1/Accounts/{account_sid}/Calls", create_call, methods=["POST"]),
        Route("/v1/Accounts/{account_sid}/Calls/{call_sid}", get_call, methods=["GET"]),
    ],
    lifespan=lambda _app: lifespan_of(services),
)
