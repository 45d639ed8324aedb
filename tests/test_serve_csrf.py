"""Only the explorer's own page may write: every state-changing route (found in the app's own route table, so a new
route is covered the day it is added) refuses a request from another origin or site (403) and a JSON route refuses
a body that is not ``application/json`` (415), on the live `served` explorer; the page's own requests succeed."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from starlette.routing import Route

from onnx_search.ids import image_id
from onnx_search.serve.app import RAW_BODY_ROUTES, build_app
from onnx_search.serve.guard import UNSAFE_METHODS, write_refusal

pytest_plugins = ["tests.serve_fixture"]


def writing_routes(tmp_path) -> list[tuple[str, str]]:
    """(method, path template) of every route of the real app that takes POST, PUT, PATCH or DELETE."""
    stub = SimpleNamespace(
        unavailable=[], max_upload=1024, runs=[], sessions={}, cache_dir=tmp_path / "explorer",
        stores=SimpleNamespace(catalog=SimpleNamespace(ns="stub")),
    )  # fmt: skip
    app = build_app(stub)
    out = [
        (method, r.path)
        for r in app.routes
        if isinstance(r, Route)
        for method in sorted((r.methods or set()) & UNSAFE_METHODS)
    ]
    return out


def _url(template: str, some_id: str) -> str:
    return re.sub(r"\{[^}]+\}", some_id, template)


def test_every_writing_route_is_found_in_the_route_table(tmp_path):
    found = writing_routes(tmp_path)
    assert ("POST", "/api/judge") in found and ("POST", "/api/judge/undo") in found and ("POST", "/api/query") in found
    assert RAW_BODY_ROUTES <= {p for _, p in found}  # an upload route that no longer exists is not left listed


def test_other_origins_and_sites_are_refused_on_every_writing_route(served, tmp_path):
    server = served.server
    own = "{0.scheme}://{0.netloc}".format(urlsplit(server.url))
    images = sorted((served.base / "images").rglob("*.jpg"))
    qid, doc = str(image_id(images[0])), str(image_id(images[1]))
    body = json.dumps({"query": qid, "doc": doc, "relevance": 1}).encode()
    as_json = {"Content-Type": "application/json"}
    routes = writing_routes(tmp_path)
    for method, template in routes:
        path = _url(template, qid)
        refusals = [
            ({"Origin": "http://evil.example"} | as_json, 403),
            ({"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403),
            ({"Origin": "null"} | as_json, 403),  # a file:// page or a sandboxed frame
            ({"Origin": own.replace(str(urlsplit(own).port), "1")} | as_json, 403),  # another port of this host
            ({"Sec-Fetch-Site": "cross-site"} | as_json, 403),
            ({"Sec-Fetch-Site": "same-site", "Origin": own} | as_json, 403),
        ]
        if template not in RAW_BODY_ROUTES:  # a JSON route: the body must say it is JSON, whoever sends it
            refusals += [({"Origin": own, "Content-Type": "text/plain"}, 415), ({}, 415)]
        for headers, status in refusals:
            got, raw = _send(server, method, path, body, headers)
            assert got == status, (method, path, headers, got, raw[:300])
            assert json.loads(raw)["error"], raw
    qrels = served.base / "data" / "judgments" / "servecheck.qrels"
    assert not qrels.exists() or f"{qid} 0 {doc} " not in qrels.read_text()  # nothing of the above was written


def test_the_pages_own_requests_succeed(served):
    server = served.server
    own = "{0.scheme}://{0.netloc}".format(urlsplit(server.url))
    page = {"Origin": own, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
    images = sorted((served.base / "images").rglob("*.jpg"))
    qid, doc = str(image_id(images[2])), str(image_id(images[3]))
    mark = json.dumps({"query": qid, "doc": doc, "relevance": 1, "judge": "csrf-check"}).encode()
    got, raw = _send(server, "POST", "/api/judge", mark, page)
    assert got == 200 and json.loads(raw)["judges"] == {"csrf-check": 1}, raw
    qrels = served.base / "data" / "judgments" / "servecheck.qrels"
    assert f"{qid} 0 {doc} 1" in qrels.read_text()
    undo = json.dumps({"query": qid, "doc": doc, "judge": "csrf-check"}).encode()
    got, raw = _send(
        server, "POST", "/api/judge/undo", undo, page | {"Content-Type": "application/json; charset=utf-8"}
    )
    assert got == 200 and json.loads(raw)["relevance"] is None, raw
    assert f"{qid} 0 {doc} " not in qrels.read_text()
    # an upload from the page: any image Content-Type (or none, as curl sends), same origin
    got, raw = _send(
        server, "POST", "/api/query?k=2", images[4].read_bytes(), {"Origin": own, "Content-Type": "image/jpeg"}
    )
    assert got == 200, raw[:300]
    got, raw = _send(server, "POST", "/api/query?k=2", images[4].read_bytes(), {})  # a script without a browser
    assert got == 200, raw[:300]


BODY = {"content-length": "12"}


@pytest.mark.parametrize(
    "method, headers, raw_body, refused",
    [
        ("GET", {"origin": "http://evil.example", "sec-fetch-site": "cross-site"}, False, None),  # reads are free
        (
            "POST",
            {"host": "127.0.0.1:8765", "origin": "http://127.0.0.1:8765", "content-type": "application/json"},
            False,
            None,
        ),  # fmt: skip
        (
            "POST",
            {"host": "127.0.0.1:8765", "origin": "http://127.0.0.1:8766", "content-type": "application/json"},
            False,
            403,
        ),  # fmt: skip
        (
            "POST",
            {"host": "127.0.0.1:8765", "origin": "https://127.0.0.1:8765", "content-type": "application/json"},
            False,
            403,
        ),  # fmt: skip
        (
            "POST",
            {"host": "127.0.0.1:8765", "origin": "http://localhost:8765", "content-type": "application/json"},
            False,
            403,
        ),  # fmt: skip
        ("PUT", {"host": "h:1", "sec-fetch-site": "same-site", "content-type": "application/json"}, False, 403),
        ("PATCH", {"host": "h:1", "sec-fetch-site": "cross-site", "content-type": "application/json"}, False, 403),
        ("DELETE", {"host": "h:1", "sec-fetch-site": "none", "content-type": "application/json"}, False, None),
        ("POST", {"host": "h:1", "sec-fetch-site": "same-origin", "content-type": "text/plain", **BODY}, False, 415),
        ("POST", {"host": "h:1", "content-type": "multipart/form-data; boundary=x", **BODY}, False, 415),
        ("POST", {"host": "h:1", "content-type": "text/plain", "transfer-encoding": "chunked"}, False, 415),
        ("POST", {"host": "h:1", "content-type": "text/plain", "content-length": "0"}, False, None),  # no body
        ("POST", {"host": "h:1", "content-type": "text/plain", **BODY}, True, None),  # an upload takes any type
        ("POST", {"host": "h:1", "origin": "http://evil.example", "content-type": "image/jpeg"}, True, 403),
    ],
)
def test_the_write_rule(method, headers, raw_body, refused):
    got = write_refusal(method, headers, "http", raw_body)
    assert (got and got[0]) == refused, got


def _send(server, method: str, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    auth = {"Authorization": f"Bearer {server.token}"} if server.token else {}
    req = urllib.request.Request(server.url + path.lstrip("/"), data=body, method=method, headers=auth | headers)
    if "Content-Type" not in headers:
        req.add_unredirected_header("Content-Type", "")  # urllib would add a form type itself
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
