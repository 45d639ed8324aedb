"""Judge mode on an explorer of its own (a child process this module kills with SIGKILL): the blind pool is the
union of every model's top-k, judgments are validated before anything is written, each is in the qrels file before
the HTTP answer (so it survives kill -9), and judged@k / P@k per model come back with their intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onnx_search.experiment.evidence import interval
from onnx_search.experiment.qrels import judgments_path, read_qrels
from onnx_search.serve.judging import SEED, blind_order
from tests.helpers import open_page

K = 4


@pytest.fixture(scope="module")
def judge_env(tmp_path_factory):
    """A run on its own Redis (no namespace shared with the `served` fixture) and a server over it."""
    from onnx_search.store.local_redis import LocalRedis
    from tests.serve_fixture import make_run, start_server  # imported late: test_serve_browser loads it as a plugin

    base = tmp_path_factory.mktemp("judging")
    redis = LocalRedis(base / "redis")
    kw = redis.start().connection_pool.connection_kwargs
    run = make_run(base, f"redis://:{kw['password']}@127.0.0.1:{kw['port']}/0")
    env = {"base": base, "run": run, "server": start_server(run)}
    yield env
    if env["server"] is not None:
        env["server"].stop()
    redis.stop()


def _post(server, body) -> tuple[int, dict]:
    status, raw = server.get("api/judge", json.dumps(body).encode(), {"Content-Type": "application/json"})
    return status, json.loads(raw)


def test_blind_order_is_fixed_and_ignores_rank_and_model():
    ids = [str(i) for i in range(1, 30)]
    assert blind_order("7", ids) == blind_order("7", list(reversed(ids))) == blind_order("7", ids + ids[:5])
    assert sorted(blind_order("7", ids)) == sorted(ids)
    assert blind_order("7", ids) != ids and blind_order("7", ids) != blind_order("8", ids)


def test_the_pool_is_the_blind_union_of_every_models_top_k(judge_env):
    server = judge_env["server"]
    status, listing = server.json(f"api/judge/queries?run=0&k={K}")
    assert status == 200 and listing["total"] == 6 and listing["done"] == 0
    qid = listing["queries"][0]["id"]
    status, pool = server.json(f"api/judge/pool/{qid}?k={K}")
    assert status == 200
    status, hits = server.json(f"api/query/{qid}?k={K}&exclude_self=1")
    union = {h["id"] for found in hits["models"].values() for h in found}
    assert len(hits["models"]) == 2 and K < len(union) <= 2 * K
    assert [d["id"] for d in pool["docs"]] == blind_order(qid, list(union))
    assert qid not in union and pool["size"] == len(union) == listing["queries"][0]["size"]
    # blind: nothing in a pool says which model found an image, or at which rank
    assert all(set(d) == {"id", "name", "relevance"} for d in pool["docs"])
    assert not {"mean", "quad"} & set(json.dumps(pool).replace('"', " ").split())
    assert server.json(f"api/judge/pool/{qid}?k={K}")[1]["docs"] == pool["docs"]


def test_bad_judgments_are_refused_before_anything_is_written(judge_env):
    server = judge_env["server"]
    qrels = judgments_path(judge_env["base"] / "data", "servecheck")
    qid = server.json(f"api/judge/queries?run=0&k={K}")[1]["queries"][0]["id"]
    doc = server.json(f"api/judge/pool/{qid}?k={K}")[1]["docs"][0]["id"]
    for body, status, says in [
        ({"query": qid, "doc": doc, "relevance": 7}, 400, "relevance must be a whole number from 0"),
        ({"query": qid, "doc": doc, "relevance": "1"}, 400, "relevance must be a whole number"),
        ({"query": qid, "doc": doc, "relevance": True}, 400, "relevance must be a whole number"),
        ({"query": qid, "doc": "../etc/passwd", "relevance": 1}, 400, "not a catalogue id"),
        ({"query": qid, "doc": "12345", "relevance": 1}, 404, "no catalogued image has id 12345"),
        ([qid, doc, 1], 400, "send a JSON object"),
    ]:
        got, answer = _post(server, body)
        assert (got, says in answer["error"]) == (status, True), (body, got, answer)
    got, raw = server.get("api/judge", b"{not json", {"Content-Type": "application/json"})
    assert got == 400 and "send JSON" in json.loads(raw)["error"]
    assert not qrels.exists()


def test_judgments_survive_kill_9_and_are_read_back(judge_env):
    """Judge a whole pool in Chromium with the keyboard, SIGKILL the server right after the last answer, check the
    qrels file, start it again: the page shows every judgment, the pool counts as judged, judged@k is 1."""
    from playwright.sync_api import expect, sync_playwright

    from tests.serve_fixture import start_server

    expect.set_options(timeout=30_000)
    server, base = judge_env["server"], judge_env["base"]
    listing = server.json(f"api/judge/queries?run=0&k={K}")[1]
    qid = listing["queries"][1]["id"]
    pool = server.json(f"api/judge/pool/{qid}?k={K}")[1]
    ranked = server.json(f"api/query/{qid}?k={K}&exclude_self=1")[1]["models"]
    label = {h["id"]: h["label"] for found in ranked.values() for h in found}
    query_label = pool["query"]["label"]
    want = {d["id"]: int(label[d["id"]] == query_label) for d in pool["docs"]}
    assert 0 < sum(want.values()) < len(want)  # the pool holds relevant and non-relevant images
    with sync_playwright() as p:
        browser, page, errors = open_page(p, 1280, 900)
        page.goto(f"{server.url}?view=judge&q={qid}&k={K}")
        expect(page.locator(f"#jpool[data-query='{qid}'] .jcard")).to_have_count(len(want))
        expect(page.locator("#jpool .jcard").first).to_be_focused()
        for n, doc in enumerate(d["id"] for d in pool["docs"]):
            card = page.locator("#jpool .jcard").nth(n)
            assert card.get_attribute("data-id") == doc
            expect(card).to_be_focused()  # each mark moves the focus on to the next image
            with page.expect_response(lambda r: r.url.endswith("/api/judge") and r.status == 200):
                page.keyboard.press(str(want[doc]))
        page.wait_for_load_state("networkidle")
        judge_env["server"].proc.kill()  # SIGKILL right after the last acknowledged judgment
        judge_env["server"].proc.wait(timeout=20)
        lines = judgments_path(base / "data", "servecheck").read_text().splitlines()
        assert sorted(lines) == sorted(f"{qid} 0 {doc} {rel}" for doc, rel in want.items())
        assert read_qrels(judgments_path(base / "data", "servecheck")) == {qid: want}

        assert errors == [], errors
        page.close()  # its requests still in flight to the killed server fail: not the page's errors
        server = judge_env["server"] = start_server(judge_env["run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}?view=judge&q={qid}&k={K}")
        expect(page.locator(f"#jpool[data-query='{qid}'] .jcard[data-rel='1']")).to_have_count(sum(want.values()))
        expect(page.locator("#jpool .jcard[data-rel='0']")).to_have_count(len(want) - sum(want.values()))
        expect(page.locator("#judge[data-done='1'][data-total='6']")).to_have_count(1)
        expect(page.locator("#jsummary tr[data-model='quad']")).to_contain_text("1.00 [1.00, 1.00]")
        browser.close()
    assert errors == [], errors
    summary = server.json(f"api/judge/summary?k={K}")[1]
    assert summary["queries"] == 1
    for model, found in ranked.items():
        p_at_k = sum(want[h["id"]] for h in found) / K
        assert summary["models"][model]["judged_at_k"] == interval([1.0], seed=SEED)
        assert summary["models"][model]["p_at_k"] == interval([p_at_k], seed=SEED)
    assert Path(server.json(f"api/judge/queries?run=0&k={K}")[1]["file"]).name == "servecheck.qrels"
    judge_env["judged"] = (qid, {m: sum(want[h["id"]] for h in found) / K for m, found in ranked.items()})


def test_a_changed_model_is_left_out_with_a_banner_and_the_others_served(judge_env):
    """Degrade, don't refuse: one model file changed since its collection was built."""
    import onnx
    from playwright.sync_api import expect, sync_playwright

    from tests.serve_fixture import start_server

    judge_env["server"].stop()
    judge_env["server"] = None
    quad = judge_env["base"] / "models" / "quad.onnx"
    original = quad.read_bytes()
    model = onnx.load(str(quad))
    model.doc_string = "remade since the collection was built"
    onnx.save(model, str(quad))
    try:
        server = start_server(judge_env["run"])
        try:
            with sync_playwright() as p:
                browser, page, errors = open_page(p, 390, 800)
                qid = server.json(f"api/judge/queries?run=0&k={K}")[1]["queries"][0]["id"]
                page.goto(f"{server.url}?q={qid}&k={K}")
                banner = page.locator("#degraded li[data-model='quad']")
                expect(banner).to_contain_text("quad")
                expect(banner.locator("code")).to_contain_text("onnx-search")  # the command that fixes it
                expect(page.locator(".col")).to_have_count(1)
                expect(page.locator(".col[data-model='mean'] .hit")).to_have_count(K)
                assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
                page.screenshot(path=str(judge_env["base"] / "degraded.png"))
                browser.close()
            assert errors == [], errors
        finally:
            server.stop()
    finally:
        quad.write_bytes(original)


def test_a_run_uses_the_judgments_made_in_the_explorer(judge_env):
    """`ground_truth: {qrels: FILE}` on the explorer's own file: the run scores the judged query from it."""
    from tests.helpers import run_cli

    qid, p_at_k = judge_env["judged"]
    base = judge_env["base"]
    if judge_env["server"] is not None:
        judge_env["server"].stop()
        judge_env["server"] = None
    qrels = judgments_path(base / "data", "servecheck")
    cfg = base / "judged.yaml"
    cfg.write_text(
        (base / "serve.yaml").read_text().replace("experiment: servecheck", "experiment: servejudged")
        + f"ground_truth: {{qrels: {qrels}}}\n"
    )
    out = run_cli("run", cfg)
    assert out.returncode == 0, out.stderr[-3000:]
    comparison = json.loads((base / "runs" / "servejudged" / "comparison.json").read_text())
    gt = comparison["summary"]["ground_truth"]
    assert {k: v for k, v in gt.items() if k != "judged_depth"} == {
        "kind": "qrels",
        "judged_queries": 1,
        "unjudged_rule": "condensed",
    }
    assert gt["judged_depth"] >= comparison["summary"]["top_k"]  # condensed lists drawn from deeper than k
    results = json.loads((base / "runs" / "servejudged" / "results.json").read_text())
    path = next(q["query"] for q in results["queries"] if str(q["id"]) == qid)
    rows = {r["model"]: r for r in comparison["per_query"] if r["query"] == path}
    for model, value in p_at_k.items():
        # every image of the pool was judged: judged@k is 1 and the condensed P@k is the explorer's P@k
        assert rows[model]["judged_at_k"] == 1.0
        assert rows[model]["p_at_k"] == pytest.approx(value)
