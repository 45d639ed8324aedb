"""`onnx-search serve` over HTTP: queries by upload and by id, thumbnails, maps, run browsers, and what it refuses.

The server is the real CLI in a child process on 127.0.0.1 over a real run (Redis + Milvus Lite + onnxruntime).
"""

import http.client
import io
import json
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from PIL import Image, ImageOps

from onnx_search.ids import image_id
from onnx_search.store.catalog import Catalog
from tests.helpers import run_cli

pytest_plugins = ["tests.serve_fixture"]  # the session-wide `served` fixture, shared with the browser test

K = 3


def _images(served) -> list[Path]:
    return sorted((served.base / "images").rglob("*.jpg"))


def _raw(server, path: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    """A request sent exactly as written (no client-side normalisation of ``..`` or ``//``)."""
    u = urlsplit(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request(method, path, body=body, headers={"Authorization": f"Bearer {server.token}"})
    r = conn.getresponse()
    out = r.status, r.read()
    conn.close()
    return out


def _answers_a_query(server, image: Path) -> dict:
    status, out = server.json(f"/api/query?k={K}", image.read_bytes())
    assert status == 200, out
    return out


def test_an_uploaded_image_gets_k_calibrated_hits_from_every_model(served):
    image = _images(served)[0]
    out = _answers_a_query(served.server, image)
    assert set(out["models"]) == {"mean", "quad"}
    for model, hits in out["models"].items():
        assert [h["rank"] for h in hits] == list(range(1, K + 1)), model
        cos = [h["cosine"] for h in hits]
        assert cos == sorted(cos, reverse=True)
        assert all(0 <= h["percentile"] <= 1 and h["z"] is not None for h in hits)
        # the upload is a catalogued image's bytes: each model finds that image first, at cosine 1
        assert hits[0]["id"] == str(image_id(image)) and hits[0]["cosine"] > 0.9999
        assert hits[0]["label"] == image.parent.name and hits[0]["percentile"] == 1.0
        assert hits[0]["also"] == [m for m in out["models"] if m != model]
    other_ids = {m: {h["id"] for h in hits} for m, hits in out["models"].items()}
    for h in out["models"]["mean"]:  # "also" marks exactly the hits the other model found too
        assert ("quad" in h["also"]) == (h["id"] in other_ids["quad"])
    status, one = served.server.json("/api/query?k=2&models=quad", image.read_bytes())
    assert status == 200 and list(one["models"]) == ["quad"] and len(one["models"]["quad"]) == 2


def test_a_query_by_id_matches_the_runs_own_search(served):
    """Re-querying from a catalogued image gives what `onnx-search run` found for it (same k, self excluded)."""
    results = json.loads((served.run / "results.json").read_text())
    k = results["top_k"]
    query = results["queries"][0]["query"]
    status, out = served.server.json(f"/api/query/{image_id(query)}?k={k}&exclude_self=1")
    assert status == 200, out
    assert out["query"]["id"] == str(image_id(query))
    for model in results["models"]:
        want = [str(h["id"]) for h in sorted(results["hits"], key=lambda h: h["rank"])
                if h["query"] == query and h["model"] == model]  # fmt: skip
        assert [h["id"] for h in out["models"][model]] == want
        assert str(image_id(query)) not in want
    status, with_self = served.server.json(f"/api/query/{image_id(query)}?k={k}&exclude_self=0")
    assert all(with_self["models"][m][0]["id"] == str(image_id(query)) for m in results["models"])


def test_thumbnails_are_served_by_id_and_made_once(served):
    image = _images(served)[1]
    i = image_id(image)
    status, first = served.server.get(f"/api/thumb/{i}")
    assert status == 200 and first[:2] == b"\xff\xd8"
    assert Image.open(io.BytesIO(first)).size == Image.open(image).size  # 64 px: never enlarged
    cached = list((served.base / "data" / "explorer" / "thumbs").rglob(f"{i}-*.jpg"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    assert served.server.get(f"/api/thumb/{i}") == (200, first)
    assert cached[0].stat().st_mtime_ns == mtime  # read back, not made again
    status, preview = served.server.get(f"/api/image/{i}")
    assert status == 200 and Image.open(io.BytesIO(preview)).format == "JPEG"


def test_bad_requests_get_a_clean_4xx_and_the_server_goes_on(served, tmp_path):
    server = served.server
    good = _images(served)[2]
    bomb = io.BytesIO()
    Image.new("1", (8000, 8000)).save(bomb, "PNG")  # 64 MP in a few kB: over the upload pixel limit
    oversized = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 400, 3), np.uint8)).save(oversized, "PNG")
    assert len(oversized.getvalue()) > served.max_upload
    cases = [
        ("GET", "/api/thumb/../../../../etc/passwd", None, 404),
        ("GET", "/api/thumb/..%2F..%2F..%2Fetc%2Fpasswd", None, 404),
        ("GET", "/api/thumb/%2Fetc%2Fpasswd", None, 404),
        ("GET", "/api/thumb//etc/passwd", None, 404),
        ("GET", f"/api/image/{good}", None, 404),
        ("GET", "/api/image/-5", None, 400),
        ("GET", "/api/thumb/12345", None, 404),  # a number that is no catalogued id
        ("GET", "/api/query/99999999999999999999", None, 400),  # beyond INT64
        ("POST", "/api/query?k=3", b"just some text, not a picture", 400),
        ("POST", "/api/query?k=3", b"", 400),
        ("POST", "/api/query?k=3", bomb.getvalue(), 400),
        ("POST", "/api/query?k=3", oversized.getvalue(), 413),
        ("POST", "/api/query?k=0", good.read_bytes(), 400),
        ("GET", "/api/map/no_such_model", None, 400),
        ("GET", "/api/runs/0/copy/100000", None, 404),
    ]
    for method, path, body, want in cases:
        status, text = _raw(server, path, method, body)
        assert status == want, (path, status, text[:200])
        assert b"root:" not in text
        if want == 400 and path.startswith("/api/"):
            assert json.loads(text)["error"], path  # a message the page shows
        _answers_a_query(server, good)  # still answering
    assert b"not a usable image" in _raw(server, "/api/query", "POST", b"%PDF-1.4")[1]
    assert b"exceeds" in _raw(server, "/api/query", "POST", bomb.getvalue())[1]


def test_a_token_is_required_of_every_request(served):
    server = served.server
    for path in ("/", "/api/models", f"/api/thumb/{image_id(_images(served)[0])}"):
        assert server.get(path, headers={"Authorization": "Bearer wrong-token-wrong-token"})[0] == 401
    status, _ = server.get(f"/api/health?token={server.token}", headers={"Authorization": ""})
    assert status == 200
    # a Host header that is not loopback is refused (DNS rebinding)
    u = urlsplit(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("GET", "/api/health", headers={"Host": "evil.example", "Authorization": f"Bearer {server.token}"})
    assert conn.getresponse().status == 400
    conn.close()


def test_a_non_loopback_host_without_a_token_is_refused(tmp_path):
    r = run_cli("serve", "--host", "0.0.0.0", "--data-dir", tmp_path / "d", "--port", "0", timeout=60)
    assert r.returncode == 2 and "--token" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("serve", "--host", "192.0.2.7", "--token", "short", "--data-dir", tmp_path / "d", timeout=60)
    assert r.returncode == 2 and "at least 16" in r.stderr
    assert not (tmp_path / "d").exists()  # refused before any store was opened


def test_maps_have_one_point_per_image_and_follow_the_collection(served, redis_server):
    server = served.server
    status, pca = server.json("/api/map/mean?method=pca")
    images = {str(image_id(p)) for p in _images(served)}
    assert status == 200 and set(pca["ids"]) == images and len(pca["ids"]) == len(images)
    xy = np.asarray(pca["xy"]).reshape(-1, 2)
    assert xy.min() == 0 and xy.max() == 1 and len(np.unique(xy, axis=0)) > len(images) // 2
    assert sorted(pca["labels"]) == sorted({p.parent.name for p in _images(served)})
    cache = served.base / "data" / "explorer" / "maps" / "servecheck_mean.pca.npz"
    assert cache.is_file()
    assert server.json("/api/map/mean?method=pca")[1]["seconds"] == 0  # from the cache
    # the collection changes (an image's vector is no longer there): the map is computed again
    catalog = Catalog(redis_server, "servecheck")
    gone = int(pca["ids"][0])
    sha = catalog.done("mean")[gone]
    catalog.unmark("mean", [gone])
    try:
        again = server.json("/api/map/mean?method=pca")[1]
        assert str(gone) not in again["ids"] and len(again["ids"]) == len(images) - 1 and again["seconds"] > 0
    finally:
        catalog.mark_done("mean", {gone: sha})
    status, tsne = server.json("/api/map/quad?method=tsne")
    assert status == 200 and set(tsne["ids"]) == images and tsne["method"] == "tsne"
    assert server.json("/api/map/quad?method=umap")[0] == 400


def test_the_run_browsers(served):
    server = served.server
    comparison = json.loads((served.run / "comparison.json").read_text())
    status, out = server.json("/api/runs/0/disagreement?a=mean&b=quad")
    assert status == 200
    rbos = [r["rbo"] for r in out["rows"]]
    assert rbos == sorted(rbos) and len(rbos) == len(comparison["pairs"]) == 6
    want = {p["query"]: p["rbo"] for p in comparison["pairs"]}
    assert all(abs(want[r["query"]] - r["rbo"]) < 1e-6 for r in out["rows"])
    assert all(len(r["a"]) == len(r["b"]) == 4 for r in out["rows"])
    assert server.json("/api/runs/0/disagreement?a=mean&b=mean")[0] == 400
    assert server.json("/api/runs/0/disagreement?a=mean&b=nope")[0] == 400

    results = json.loads((served.run / "results.json").read_text())
    rows = {(r["copy"], r["model"]): r["rank"] for r in results["robustness"]["rows"]}
    for a, b in (("mean", "quad"), ("quad", "mean")):
        got = server.json(f"/api/runs/0/robustness?a={a}&b={b}")[1]["rows"]
        want = [c for c in range(len(results["robustness"]["copies"]))
                if rows.get((c, a), 0) is None and rows.get((c, b)) is not None]  # fmt: skip
        assert [r["copy"] for r in got] == want
    assert want or got  # the two tiny models do miss different copies
    # a copy is made again from its original: a mirrored copy is the mirror image of its original
    copies = results["robustness"]["copies"]
    c = next(i for i, x in enumerate(copies) if x["transform"] == "hflip")
    status, data = server.get(f"/api/runs/0/copy/{c}")
    copy = np.asarray(Image.open(io.BytesIO(data)), np.float64)
    original = np.asarray(ImageOps.mirror(Image.open(copies[c]["original"]).convert("RGB")), np.float64)
    assert status == 200 and copy.shape == original.shape and np.abs(copy - original).mean() < 6
    assert np.abs(copy - original[:, ::-1]).mean() > 3 * np.abs(copy - original).mean()


def test_the_page_and_its_assets_come_from_the_package(served):
    status, page = served.server.get("/")
    assert status == 200 and b'src="static/app.js"' in page
    assert b"http://" not in page and b"https://" not in page
    for name in ("app.js", "app.css"):
        status, body = served.server.get(f"/static/{name}")
        assert status == 200 and b"https://" not in body and b"http://" not in body
    assert served.server.get("/static/../app.py")[0] == 404
