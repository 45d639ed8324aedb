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
    refused = conn.getresponse()
    assert refused.status == 400 and "loopback host only" in json.loads(refused.read())["error"]
    conn.close()


def test_a_non_loopback_host_without_a_token_is_refused(tmp_path):
    r = run_cli("serve", "--host", "0.0.0.0", "--data-dir", tmp_path / "d", "--port", "0", timeout=60)
    assert r.returncode == 2 and "--token" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("serve", "--host", "192.0.2.7", "--token", "short", "--data-dir", tmp_path / "d", timeout=60)
    assert r.returncode == 2 and "at least 16" in r.stderr
    assert not (tmp_path / "d").exists()  # refused before any store was opened


def test_maps_have_one_point_per_image_and_follow_the_collection(served, redis_server):
    server = served.server
    status, pca = server.json("/api/map/mean?method=pca&wait=60")
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
        again = server.json("/api/map/mean?method=pca&wait=60")[1]
        assert str(gone) not in again["ids"] and len(again["ids"]) == len(images) - 1 and again["seconds"] > 0
    finally:
        catalog.mark_done("mean", {gone: sha})
    status, tsne = server.json("/api/map/quad?method=tsne&wait=120")
    assert status == 200 and set(tsne["ids"]) == images and tsne["method"] == "tsne"
    assert server.json("/api/map/quad?method=umap")[0] == 400  # not offered: bench/projections.json


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


def test_an_uploaded_catalogued_image_is_left_out_of_its_own_hits_when_asked(served):
    image = _images(served)[3]
    mine = str(image_id(image))
    status, kept = served.server.json(f"/api/query?k={K}&exclude_self=0", image.read_bytes())
    assert status == 200 and all(hits[0]["id"] == mine for hits in kept["models"].values())
    status, out = served.server.json(f"/api/query?k={K}&exclude_self=1", image.read_bytes())
    assert status == 200 and out["exclude_self"] is True and out["query"]["excluded"] == [mine]
    for model, hits in out["models"].items():
        assert mine not in [h["id"] for h in hits] and [h["rank"] for h in hits] == list(range(1, K + 1))
        assert [h["id"] for h in hits] == [h["id"] for h in kept["models"][model][1:]] + [hits[-1]["id"]]
    status, other = served.server.json(f"/api/query?k={K}&exclude_self=1", _recoded(image))
    assert status == 200 and other["query"]["excluded"] == []  # other bytes: not the catalogued file


def _recoded(image: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(image).save(buf, "PNG")
    return buf.getvalue()


def test_percentile_and_z_equal_the_run_reports_for_the_same_hit(served):
    results = json.loads((served.run / "results.json").read_text())
    status, models = served.server.json("/api/models")
    assert all(m["baseline_source"] == f"run {served.run.name}" for m in models["models"])
    compared = 0
    for q in results["queries"]:
        status, out = served.server.json(f"/api/query/{image_id(q['query'])}?k={results['top_k']}&exclude_self=1")
        assert status == 200
        for model, hits in out["models"].items():
            want = {str(h["id"]): h for h in results["hits"] if h["query"] == q["query"] and h["model"] == model}
            for h in hits:
                # equal as the report shows them; z may differ in its 6th decimal (the index's float32 cosines)
                assert h["percentile"] == want[h["id"]]["percentile"], (model, h)
                assert abs(h["z"] - want[h["id"]]["z"]) < 5e-6, (model, h)
                compared += 1
    assert compared == len(results["hits"])


def test_every_error_is_json_and_the_bearer_scheme_is_case_insensitive(served):
    server = served.server
    for method, path, want in (("GET", "/no/such/route", 404), ("GET", "/api/nothing", 404),
                               ("DELETE", "/api/models", 405), ("PUT", "/api/query", 405)):  # fmt: skip
        status, body = _raw(server, path, method)
        assert status == want and json.loads(body)["error"], (path, body[:200])
    for scheme in ("bearer", "BEARER", "Bearer"):
        status, _ = server.get("/api/health", headers={"Authorization": f"{scheme} {server.token}"})
        assert status == 200, scheme
    assert server.get("/api/health", headers={"Authorization": f"Basic {server.token}"})[0] == 401
    status, out = server.json("/api/models")
    assert out["limits"]["k"] == {"min": 1, "max": 100, "default": 10} and out["unavailable"] == []
    for k in (0, 101, 500):
        status, body = _raw(server, f"/api/query/{image_id(_images(served)[0])}?k={k}")
        assert status == 400 and "between 1 and 100" in json.loads(body)["error"]


def test_each_models_header_data(served):
    status, out = served.server.json("/api/models")
    by_name = {m["name"]: m for m in out["models"]}
    assert by_name["mean"]["dim"] == 3 and by_name["quad"]["dim"] == 12
    assert all(m["images"] == len(_images(served)) for m in by_name.values())
    assert by_name["quad"]["weights"] == "none (quadrant means)" and by_name["quad"]["random_weights"] is False
    comparison = json.loads((served.run / "comparison.json").read_text())
    evidence = comparison.get("evidence") or {}
    metric = (evidence.get("verdict") or {}).get("metric")
    if metric:  # the run's headline figure with its interval, as the report has it
        for name, m in by_name.items():
            want = evidence["quality"][metric][name]
            assert {k: m["quality"][k] for k in ("mean", "low", "high", "n")} == {
                k: want[k] for k in ("mean", "low", "high", "n")
            }
    else:
        assert all("quality" not in m for m in by_name.values())


def test_the_gallery_pages_through_the_catalogue_by_label(served):
    server = served.server
    images = _images(served)
    status, first = server.json("/api/gallery?limit=7")
    assert status == 200 and first["total"] == len(images) and len(first["items"]) == 7
    assert {x["name"]: x["count"] for x in first["labels"]} == {c: 5 for c in ("circles", "stripes", "checkers",
                                                                               "gradient")}  # fmt: skip
    pages, offset = [], 0
    while offset < first["total"]:
        pages += server.json(f"/api/gallery?limit=7&offset={offset}")[1]["items"]
        offset += 7
    assert sorted(x["id"] for x in pages) == sorted(str(image_id(p)) for p in images) and len(pages) == len(images)
    status, stripes = server.json("/api/gallery?label=stripes&limit=200")
    assert stripes["total"] == 5 and {x["label"] for x in stripes["items"]} == {"stripes"}
    assert {x["id"] for x in stripes["items"]} == {str(image_id(p)) for p in images if p.parent.name == "stripes"}
    for bad in ("label=nope", "limit=0", "limit=201", "offset=-1", "limit=x"):
        status, out = server.json(f"/api/gallery?{bad}")
        assert status == 400 and out["error"], bad


def test_a_chunked_upload_without_content_length_is_cut_at_the_byte_limit(served):
    u = urlsplit(served.server.url)

    def send(total: int) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        chunk = b"\0" * 16384
        body = (chunk for _ in range(total // len(chunk)))
        headers = {"Authorization": f"Bearer {served.server.token}", "Content-Type": "image/jpeg"}
        conn.request("POST", "/api/query?k=2", body=body, encode_chunked=True, headers=headers)
        r = conn.getresponse()
        out = r.status, r.read()
        conn.close()
        return out

    status, body = send(served.max_upload + 65536)
    assert status == 413 and b"upload exceeds the" in body  # cut while streaming, not after reading it all
    status, body = send(16384 * 4)  # under the limit: read whole, then refused as no image (not 413)
    assert status == 400 and b"not a usable image" in body


def test_a_changed_or_missing_model_file_is_left_out_and_the_others_are_served(tmp_path, redis_url_module):
    """Degrade, don't refuse; and the maps computed before a restart are read from disk after it."""
    from onnx_search.models.convert import annotate
    from tests.serve_fixture import make_run, start_server

    run = make_run(tmp_path, redis_url_module, "servedegrade")
    query = image_id(sorted((tmp_path / "images").rglob("*.jpg"))[0])
    server = start_server(run)
    try:
        for method in ("pca", "tsne"):
            assert server.json(f"/api/map/mean?method={method}&wait=120")[1]["seconds"] > 0
    finally:
        assert server.stop() == 0
    maps = sorted((tmp_path / "data" / "explorer" / "maps").glob("*.npz"))
    mtimes = [p.stat().st_mtime_ns for p in maps]
    assert len(maps) == 2
    quad = tmp_path / "models" / "quad.onnx"
    annotate(quad, "resnet50", weights="remade after the run")  # same graph, another file: another sha256
    server = start_server(run)
    try:
        assert "not serving quad" in "".join(server.lines)
        status, out = server.json("/api/models")
        assert status == 200 and [m["name"] for m in out["models"]] == ["mean"]
        (gone,) = out["unavailable"]
        assert gone["model"] == "quad" and "differs from the file" in gone["reason"]
        assert "--model quad --rebuild" in gone["fix"]
        status, answer = server.json(f"/api/query/{query}?k=3")
        assert status == 200 and list(answer["models"]) == ["mean"]
        status, refused = server.json(f"/api/query/{query}?k=3&models=quad")
        assert status == 400 and "differs from the file" in refused["error"]
        for method in ("pca", "tsne"):  # read from the disk cache after the restart, not computed again
            status, m = server.json(f"/api/map/mean?method={method}")
            assert status == 200 and m["seconds"] == 0, method
        assert [p.stat().st_mtime_ns for p in maps] == mtimes
    finally:
        assert server.stop() == 0
    quad.unlink()
    server = start_server(run)
    try:
        (gone,) = server.json("/api/health")[1]["unavailable"]
        assert gone["model"] == "quad" and "does not exist" in gone["reason"] and "convert" in gone["fix"]
        assert server.json(f"/api/query/{query}?k=2")[0] == 200
    finally:
        assert server.stop() == 0
