"""HTTP routes (Starlette): the page, its JSON API, and images by catalogue id only.

Every request path is matched against fixed routes; an image is found through the catalogue from a numeric id,
never from a path in the request. Uploads are read with a byte limit before anything decodes them.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ..embed.decode import decode, read_bytes
from ..errors import DecodeError, OnnxSearchError
from .explorer import Explorer
from .guard import (
    K_DEFAULT,
    K_MAX,
    K_MIN,
    LIMIT_MAX,
    RequestError,
    bearer_token,
    parse_id,
    parse_int,
    parse_k,
    write_refusal,
)
from .judging import judge_routes
from .maps import METHODS, SLOW_METHODS, TSNE_MAX_POINTS
from .thumbs import PREVIEW_SIDE, THUMB_SIDE, jpeg_bytes

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
CSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'"
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]
RAW_BODY_ROUTES = frozenset({"/api/query"})  # POST an image file: any Content-Type, same-origin only


class TokenGate:
    """ASGI middleware: every request must carry the token (``Authorization: Bearer``, ``?token=`` or the cookie
    that a request with ``?token=`` sets, so the page's own scripts and images need not repeat it)."""

    COOKIE = "onnx_search_token"

    def __init__(self, app, token: str) -> None:
        self.app, self.token = app, token

    def _ok(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        req = Request(scope)
        bearer = bearer_token(req.headers.get("authorization", ""))
        in_query = req.query_params.get("token", "")
        if not (self._ok(bearer) or self._ok(in_query) or self._ok(req.cookies.get(self.COOKIE, ""))):
            await JSONResponse({"error": "a valid token is required (?token=... or Bearer)"}, 401)(scope, receive, send)
            return
        if not self._ok(in_query):
            await self.app(scope, receive, send)
            return
        cookie = f"{self.COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode()

        async def send_with_cookie(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class OwnPageWrites:
    """ASGI middleware: a state-changing request (POST, PUT, PATCH, DELETE on any route) must come from the
    explorer's own page: no ``Sec-Fetch-Site: cross-site``/``same-site``, no foreign ``Origin`` (403), and a JSON
    body (415) except on ``raw_body`` routes (image uploads), whatever the route (``guard.write_refusal``)."""

    def __init__(self, app, raw_body: frozenset[str] = frozenset()) -> None:
        self.app, self.raw_body = app, raw_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            req = Request(scope)
            refused = write_refusal(req.method, req.headers, scope.get("scheme", "http"), req.url.path in self.raw_body)
            if refused:
                await JSONResponse({"error": refused[1]}, refused[0])(scope, receive, send)
                return
        await self.app(scope, receive, send)


class LoopbackOnly:
    """Starlette's TrustedHostMiddleware (DNS rebinding), its refusal answered in JSON like every other error."""

    PASSED = "onnx_search.host_ok"

    def __init__(self, app, allowed_hosts: list[str]) -> None:
        self.app = app
        self.guard = TrustedHostMiddleware(self._passed, allowed_hosts=allowed_hosts)

    async def _passed(self, scope, receive, send) -> None:
        scope[self.PASSED] = True
        await self.app(scope, receive, send)

    async def __call__(self, scope, receive, send) -> None:
        async def json_refusal(message) -> None:
            if scope.get(self.PASSED):
                await send(message)
            elif message["type"] == "http.response.start":  # the guard's plain-text refusal, replaced
                error = "this explorer answers requests to a loopback host only (127.0.0.1, localhost, [::1])"
                await JSONResponse({"error": error}, 400)(scope, receive, send)

        await self.guard(scope, receive, json_refusal if scope["type"] == "http" else send)


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes ``limit`` bytes, before it is all read."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"upload of {declared} bytes exceeds the {limit} byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"upload exceeds the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _models_param(request: Request) -> list[str] | None:
    raw = request.query_params.get("models", "")
    return [m for m in raw.split(",") if m] or None


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "0").lower() in ("1", "true", "yes", "on")


def build_app(ex: Explorer, token: str | None = None, loopback: bool = True, blind_names: bool = False) -> Starlette:
    """The Starlette app over one Explorer; ``loopback`` also refuses requests whose Host is not loopback;
    ``blind_names`` keeps file names and labels out of every judging answer, whatever the page asks."""

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": CSP})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in {"app.js", "app.css"}:
            return _error(404, "no such file")
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        return FileResponse(STATIC / name, media_type=kind, headers={"Cache-Control": "no-cache"})

    unavailable = [u.as_dict() for u in ex.unavailable]
    limits = {
        "k": {"min": K_MIN, "max": K_MAX, "default": K_DEFAULT},
        "max_upload_bytes": ex.max_upload,
        "gallery_limit_max": LIMIT_MAX,
        "map_methods": list(METHODS),
        "map_max_points": {m: TSNE_MAX_POINTS for m in SLOW_METHODS if m in METHODS},
    }

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "models": list(ex.sessions), "runs": len(ex.runs), "unavailable": unavailable})

    async def models(request: Request) -> Response:
        return JSONResponse(
            {
                "models": await run_in_threadpool(ex.models),
                "runs": [r.describe() for r in ex.runs],
                "unavailable": unavailable,
                "limits": limits,
            }
        )

    async def query(request: Request) -> Response:
        k = parse_k(request.query_params.get("k"))
        data = await read_limited(request, ex.max_upload)
        job = ex.uploads.submit(ex.query_upload, data, k, _models_param(request), _flag(request, "exclude_self"))
        return JSONResponse(await asyncio.wrap_future(job))

    async def gallery(request: Request) -> Response:
        q = request.query_params
        offset = parse_int(q.get("offset"), "offset", 0, 0, 10**9)
        limit = parse_int(q.get("limit"), "limit", 60, 1, LIMIT_MAX)
        label = q.get("label")
        return JSONResponse(await run_in_threadpool(ex.gallery, label, offset, limit))

    async def query_id(request: Request) -> Response:
        image_id = parse_id(request.path_params["id"])
        k = parse_k(request.query_params.get("k"))
        out = await run_in_threadpool(ex.query_id, image_id, k, _flag(request, "exclude_self"), _models_param(request))
        return JSONResponse(out)

    def _image(image_id: int, side: int) -> bytes:
        rec = ex.record(image_id)
        try:
            if side == THUMB_SIDE:
                return ex.thumbs.get(image_id, rec.sha, rec.path)
            return jpeg_bytes(decode(read_bytes(rec.path), draft_size=side), side)
        except DecodeError as exc:
            raise RequestError(404, f"image {image_id} is catalogued but cannot be read now: {exc}") from None

    async def thumb(request: Request) -> Response:
        data = await run_in_threadpool(_image, parse_id(request.path_params["id"]), THUMB_SIDE)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    async def image(request: Request) -> Response:
        data = await run_in_threadpool(_image, parse_id(request.path_params["id"]), PREVIEW_SIDE)
        return Response(data, media_type="image/jpeg")

    async def map_(request: Request) -> Response:
        method = request.query_params.get("method", "pca")
        wait = parse_int(request.query_params.get("wait"), "wait", 0, 0, 600)
        out = await run_in_threadpool(ex.map, request.path_params["model"], method, float(wait))
        return JSONResponse(out, status_code=200 if out["state"] == "ready" else 202)

    def _pair(request: Request) -> tuple[str, str]:
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        if not a or not b or a == b:
            raise RequestError(400, "choose two different models: ?a=MODEL&b=MODEL")
        return a, b

    async def disagreement(request: Request) -> Response:
        run = ex.run(_int(request.path_params["run"]))
        return JSONResponse({"run": run.name, "rows": run.disagreement(*_pair(request))})

    async def robustness(request: Request) -> Response:
        run = ex.run(_int(request.path_params["run"]))
        return JSONResponse({"run": run.name, "rows": run.robustness(*_pair(request))})

    async def copy_image(request: Request) -> Response:
        run = ex.run(_int(request.path_params["run"]))
        try:
            img = await run_in_threadpool(run.copy_image, _int(request.path_params["copy"]))
        except (LookupError, DecodeError) as exc:
            return _error(404, str(exc))
        return Response(jpeg_bytes(img, THUMB_SIDE), media_type="image/jpeg")

    async def on_request_error(request: Request, exc: RequestError) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return _error(exc.status, str(exc), headers)

    async def on_http(request: Request, exc: HTTPException) -> Response:
        """Starlette's own refusals (no such route: 404, wrong method: 405) as JSON like every other error."""
        message = {404: f"no such route: {request.url.path[:200]}", 405: f"{request.method} is not allowed here"}
        return _error(exc.status_code, message.get(exc.status_code, exc.detail), exc.headers)

    async def on_lookup(request: Request, exc: KeyError) -> Response:
        return _error(400, str(exc.args[0]) if exc.args else "not found")

    async def on_error(request: Request, exc: OnnxSearchError) -> Response:
        return _error(400, str(exc))

    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/api/health", health),
        Route("/api/models", models),
        Route("/api/query", query, methods=["POST"]),
        Route("/api/query/{id}", query_id),
        Route("/api/gallery", gallery),
        Route("/api/thumb/{id}", thumb),
        Route("/api/image/{id}", image),
        Route("/api/map/{model}", map_),
        Route("/api/runs/{run}/disagreement", disagreement),
        Route("/api/runs/{run}/robustness", robustness),
        Route("/api/runs/{run}/copy/{copy}", copy_image),
        *judge_routes(ex, names=not blind_names),
    ]
    middleware = [Middleware(LoopbackOnly, allowed_hosts=LOOPBACK_NAMES)] if loopback else []
    middleware.append(Middleware(OwnPageWrites, raw_body=RAW_BODY_ROUTES))
    if token:
        middleware.append(Middleware(TokenGate, token=token))
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            RequestError: on_request_error,
            HTTPException: on_http,
            KeyError: on_lookup,
            OnnxSearchError: on_error,
        },
    )


def _int(text: str) -> int:
    if not text.isdigit() or len(text) > 9:
        raise RequestError(400, f"not an index: {text[:20]!r}")
    return int(text)
