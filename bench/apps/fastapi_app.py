"""(c) FastAPI with async dependencies: the services and the caller are dependencies, the
body is the generated model, validated by FastAPI."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from bench.apps.common import (
    PROBLEM_JSON,
    account_context,
    invalid_body,
    lifespan_of,
    make_services,
    problem_parts,
)
from calls_api.context import AccountContext
from calls_api.problems import Problem
from calls_api.services import Services
from generated import models
from handlers import calls

services = make_services()
app = FastAPI(lifespan=lambda _app: lifespan_of(services), openapi_url=None, docs_url=None)


async def get_services() -> Services:
    return services


async def caller(
    account_sid: str,
    services: Annotated[Services, Depends(get_services)],
    authorization: Annotated[str | None, Header()] = None,
) -> AccountContext:
    return await account_context(services, authorization, account_sid)


@app.exception_handler(Problem)
async def problem(request: Request, exc: Problem) -> Response:
    body, status, headers = problem_parts(exc, request.url.path)
    return Response(body, status, headers, media_type=PROBLEM_JSON)


@app.exception_handler(RequestValidationError)
async def invalid(request: Request, exc: RequestValidationError) -> Response:
    return await problem(request, invalid_body(list(exc.errors())))


@app.post("/v1/Accounts/{account_sid}/Calls", status_code=201)
async def create_call(
    account_sid: str,
    body: models.CallCreate,
    ctx: Annotated[AccountContext, Depends(caller)],
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Response:
    result = await calls.create_call(
        ctx, account_sid=account_sid, body=body, idempotency_key=idempotency_key
    )
    return Response(
        result.body.model_dump_json(by_alias=True),
        201,
        headers={"Location": result.location},
        media_type="application/json",
    )


@app.get("/v1/Accounts/{account_sid}/Calls/{call_sid}")
async def get_call(
    account_sid: str, call_sid: str, ctx: Annotated[AccountContext, Depends(caller)]
) -> Response:
    result = await calls.get_call(ctx, account_sid, call_sid)
    return Response(result.body.model_dump_json(by_alias=True), media_type="application/json")
