"""4xx answers that can always be written, whatever text or numbers the client sent.

Python's JSON parser (which FastAPI uses) accepts more than UTF-8 text and finite
numbers: `"\\ud800"` (a lone surrogate), `NaN`, `Infinity`, `1e400` (inf). Pydantic
refuses those values, and FastAPI's default 422 answer echoes them back (`input`, `ctx`).
Writing that answer then fails (a lone surrogate cannot be encoded as UTF-8, and JSON
has no NaN), and the client saw `500 Internal Server Error` for a bad request.

`install(app)` replaces FastAPI's validation handler with one that makes every echoed
value JSON-safe first (`json_safe`): strings keep what can be encoded and show a lone
surrogate as its `\\uXXXX` escape, non-finite numbers become the strings "NaN",
"Infinity" and "-Infinity", and long values are cut. The answer is still
`422 {"detail": [{"type", "loc", "msg", "input"}, ...]}`, as FastAPI's. A body the parser
refuses outright (invalid UTF-8, nesting deeper than Python's recursion limit, an integer
of more than 4300 digits) stays FastAPI's 400, with the parser's reason added.
"""
from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

MAX_ECHO_CHARS = 200  # of any echoed string
MAX_ECHO_ITEMS = 20  # of any echoed list or object
MAX_ECHO_DEPTH = 4
PARSE_ERROR = "There was an error parsing the body"  # FastAPI's 400 detail when json.loads fails


def safe_text(s: str, limit: int = MAX_ECHO_CHARS) -> str:
    """`s` cut to `limit` characters, each lone surrogate shown as its \\uXXXX escape."""
    cut = s[:limit] + ("..." if len(s) > limit else "")
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def json_safe(value: Any, depth: int = 0) -> Any:
    """A copy of `value` that `json.dumps(..., allow_nan=False)` and UTF-8 can always write."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return safe_text(value)
    if depth >= MAX_ECHO_DEPTH:
        return "..."
    if isinstance(value, dict):
        return {safe_text(str(k), 64): json_safe(v, depth + 1) for k, v in list(value.items())[:MAX_ECHO_ITEMS]}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, depth + 1) for v in list(value)[:MAX_ECHO_ITEMS]]
    return safe_text(repr(value))


def _error(err: dict) -> dict:
    out = {"type": err.get("type"), "loc": [json_safe(p) for p in err.get("loc", ())], "msg": safe_text(
        str(err.get("msg", "")), 500)}
    if "input" in err:
        out["input"] = json_safe(err["input"])
    return out


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [_error(e) for e in exc.errors()]})


async def http_error(request: Request, exc: HTTPException):
    """FastAPI's own answer, except that its body-parsing 400 also says what the parser refused
    (invalid UTF-8, nesting too deep, an integer of more than 4300 digits...)."""
    cause = exc.__cause__
    if exc.status_code == 400 and exc.detail == PARSE_ERROR and cause is not None:
        exc = HTTPException(400, f"{PARSE_ERROR}: {type(cause).__name__}: {safe_text(str(cause))}", exc.headers)
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    """Answer every request validation error with a 422 that can be written, and say why a body
    could not be parsed (see the module docstring)."""
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
