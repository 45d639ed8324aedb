"""Judge mode on an explorer of its own (a child process this module kills with SIGKILL): the blind pool is the
union of every model's top-k, judgments are validated before anything is written, each is in the qrels file before
the HTTP answer (so it survives kill -9), and judged@k / P@k per model come back with their intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onnx_search.experiment.evidence import interval
from onnx_search.experiment.qrels import judges_path, judgments_path, read_qrels
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
    # blind: nothing in a pool says which model found an image, or at which rank; no file name or label unless asked
    assert all(set(d) == {"id", "relevance", "conflict"} for d in pool["docs"])
    assert set(pool["query"]) == {"id"} and pool["k"] == K  # k defaults to the run's top_k
    assert not {"mean", "quad"} & set(json.dumps(pool).replace('"', " ").split())
    named = server.json(f"api/judge/pool/{qid}?k={K}&names=1")[1]
    assert all(d["name"].endswith(".jpg") for d in named["docs"]) and named["query"]["label"]
    assert server.json(f"api/judge/pool/{qid}?k={K}")[1]["docs"] == pool["docs"]


def test_bad_judgments_are_refused_before_anything_is_written(judge_env):
    server = judge_env["server"]
    qrels = judgments_path(judge_env["base"] / "data", "servecheck")
    qid = server.json(f"api/judge/queries?run=0&k={K}")[1]["queries"][0]["id"]
    doc = server.json(f"api/judge/pool/{qid}?k={K}")[1]["docs"][0]["id"]
    for body, status, says in [
        ({"query": qid, "doc": doc, "relevance": 7}, 400, "grade 7 is outside this experiment's scale"),
        ({"query": qid, "doc": doc, "relevance": 2}, 400, "set judging.max_grade"),  # a binary experiment
        ({"query": qid, "doc": doc, "relevance": "1"}, 400, "outside this experiment's scale"),
        ({"query": qid, "doc": doc, "relevance": True}, 400, "outside this experiment's scale"),
        ({"query": qid, "doc": qid, "relevance": 1}, 400, "judged against itself"),
        ({"query": qid, "doc": doc, "relevance": 1, "judge": "two words"}, 400, "judge name"),
        ({"query": qid, "doc": "../etc/passwd", "relevance": 1}, 400, "not a catalogue id"),
        ({"query": qid, "doc": "12345", "relevance": 1}, 404, "no catalogued image has id 12345"),
        ([qid, doc, 1], 400, "send a JSON object"),
    ]:
        got, answer = _post(server, body)
        assert (got, says in answer["error"]) == (status, True), (body, got, answer)
    got, raw = server.get("api/judge", b"{not json", {"Content-Type": "application/json"})
    assert got == 400 and "send JSON" in json.loads(raw)["error"]
    assert not qrels.exists() and not judges_path(qrels).exists()


def test_judgments_survive_kill_9_and_are_read_back(judge_env):
    """Judge a whole pool in Chromium with the keyboard, SIGKILL the server right after the last answer, check the
    qrels file, start it again: the page shows every judgment, the pool counts as judged, judged@k is 1."""
    from playwright.sync_api import expect, sync_playwright

    from tests.serve_fixture import start_server

    expect.set_options(timeout=30_000)
    server, base = judge_env["server"], judge_env["base"]
    listing = server.json(f"api/judge/queries?run=0&k={K}")[1]
    qid = listing["queries"][1]["id"]
    pool = server.json(f"api/judge/pool/{qid}?k={K}&names=1")[1]
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
        expect(page.locator("#jresults tr")).to_have_count(0)  # per-model figures only when asked
        page.click("#jshow")
        expect(page.locator("#jresults tr[data-model='quad']").first).to_contain_text("1.00 [1.00, 1.00]")
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


class _World:
    """A stand-in Explorer for the judging logic alone: which model finds which image is given, nothing else."""

    def __init__(self, found: dict[str, list[int]], query: int = 1) -> None:
        from types import SimpleNamespace

        self.found, self.sessions = found, dict.fromkeys(found)
        recs = {i: SimpleNamespace(path=f"/img/{i}.jpg", label=f"L{i % 3}") for i in range(1, 40)}
        self.recs = recs
        catalog = SimpleNamespace(ns="w", get_images=lambda ids: {i: recs[i] for i in ids})
        self.stores = SimpleNamespace(catalog=catalog, fetch_present=lambda model, ids: {})  # no stored vectors
        self.runs = [SimpleNamespace(results={"queries": [{"query": "/img/1.jpg"}, {"query": "/img/2.jpg"}]})]

    def query_id(self, qid, k, exclude_self, models):
        return {"models": {m: [{"id": str(i)} for i in self.found[m][:k]] for m in models}}

    def record(self, i):
        return self.recs[i]

    def run(self, index):
        return self.runs[index]


@pytest.mark.parametrize("names", [False, True])
def test_nothing_served_while_judging_depends_on_which_model_found_what(tmp_path, monkeypatch, names):
    """The same pool found three ways (models swapped, ranks reversed, images split differently): every answer
    served while judging (the list, the pool, a mark, an undo) is the same, byte for byte."""
    import onnx_search.serve.judging as judging_module
    from onnx_search.serve.judging import Judging

    monkeypatch.setattr(judging_module, "image_id", lambda p: int(Path(p).stem))
    worlds = {
        "a finds 5-8, b 9-12": {"a": [5, 6, 7, 8], "b": [9, 10, 11, 12]},
        "swapped": {"a": [9, 10, 11, 12], "b": [5, 6, 7, 8]},
        "ranks reversed, split": {"a": [12, 7, 10, 5], "b": [6, 11, 9, 8]},
        "overlapping": {"a": [5, 6, 7, 8, 9, 10], "b": [8, 9, 10, 11, 12]},
    }
    answers = {}
    for name, found in worlds.items():
        k = 6 if name == "overlapping" else 4
        j = Judging(_World(found), tmp_path / name, "exp", max_grade=3, default_k=k)
        seen = [j.queries(0, k, None, "alice"), j.pool(1, k, None, "alice", names)]
        seen.append(j.judge(1, 7, 2, "alice"))
        seen.append(j.judge(1, 7, 0, "bob"))
        seen.append(j.pool(1, k, None, "bob", names))
        seen.append(j.unjudge(1, 7, "bob"))
        seen.append(j.queries(0, k, None, "alice"))
        text = json.dumps(seen, sort_keys=True).replace(str(tmp_path / name), "FILE")
        answers[name] = text.replace('"k": 6', '"k": 4')
        assert '"a"' not in text and '"b"' not in text and "rank" not in text
    assert len(set(answers.values())) == 1, answers
    assert ("L1" in answers["swapped"]) == names  # labels and file names only when asked
    blind = Judging(_World(worlds["swapped"]), tmp_path / "blind", "exp", 3, 4, names=False)  # serve --blind-names
    assert "L1" not in json.dumps(blind.pool(1, 4, None, "alice", names=True))
    assert blind.queries(0, 4, None, "alice")["names_allowed"] is False
    # the per-model figures are another matter: they differ, and are served only when the judge asks
    first = Judging(_World(worlds["swapped"]), tmp_path / "swapped", "exp", max_grade=3, default_k=4)
    other = Judging(_World(worlds["a finds 5-8, b 9-12"]), tmp_path / "a finds 5-8, b 9-12", "exp", 3, 4)
    assert first.summary(4, None)["models"] != other.summary(4, None)["models"], first.store.records()


def test_two_pools_judged_with_the_keyboard_blind_graded_and_undone(judge_env):
    """A named judge works through two pools at 1366x768 with the keyboard only: grades 0-3 (the run's
    judging.max_grade is 3), an undo, full size, next unjudged pool. No per-model figure reaches the page or the
    answers it received until "Show results"; the marks are on disk; grade 2 is what nDCG scores; when k changes
    the old pool goes at once; the query stays in view while the third row of candidates is scrolled to."""
    from playwright.sync_api import expect, sync_playwright

    from onnx_search.bench.results import write_result
    from onnx_search.bench.serve import first_pool
    from onnx_search.experiment.qrels import JudgmentStore
    from onnx_search.experiment.results import recompare
    from tests.serve_fixture import start_server

    expect.set_options(timeout=30_000)
    base, run = judge_env["base"], judge_env["run"]
    if judge_env["server"] is not None:
        judge_env["server"].stop()
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["judging"] = {"max_grade": 3}
    (run / "manifest.json").write_text(json.dumps(manifest))
    server = judge_env["server"] = start_server(run)
    qrels_file = judgments_path(base / "data", "servecheck")
    # the first pool on a server just started: well within 2 s, written by the serve bench as first_pool_seconds
    query = json.loads((run / "results.json").read_text())["queries"][0]["id"]
    timed = first_pool(server.url, query, K, run=True)
    assert 0 < timed["first_pool_seconds"] < 2.0, timed
    written = json.loads(write_result(base / "bench", "serve.json", {"first_pool": timed} | timed).read_text())
    assert written["first_pool_seconds"] == timed["first_pool_seconds"] and written["first_pool"]["k"] == K
    listing = server.json("api/judge/queries?run=0&judge=carol")[1]
    first, second = listing["queries"][0]["id"], listing["queries"][1]["id"]
    ids1 = [d["id"] for d in server.json(f"api/judge/pool/{first}?judge=carol")[1]["docs"]]
    mark = {"query": first, "doc": ids1[1], "relevance": 2, "judge": "dave"}  # another judge, before carol
    assert server.get("api/judge", json.dumps(mark).encode(), {"Content-Type": "application/json"})[0] == 200
    answers: list[str] = []
    with sync_playwright() as p:
        browser, page, errors = open_page(p, 1366, 768)
        page.on("response", lambda r: answers.append(r.text()) if "/api/judge" in r.url else None)
        page.goto(f"{server.url}?view=judge")
        expect(page.locator("#k")).to_have_value(str(K))  # the run's top_k, not a default of the page
        page.fill("#jname", "carol")
        page.press("#jname", "Tab")
        expect(page.locator(f"#jpool[data-query='{first}'] .jcard")).not_to_have_count(0)
        expect(page.locator("#jsaved code")).to_have_text(str(qrels_file))
        cards = page.locator("#jpool .jcard")
        n1 = cards.count()
        assert cards.evaluate_all("els => els.map(e => e.dataset.id)") == ids1  # the same pool for every judge
        expect(cards.first).to_be_focused()
        expect(cards.nth(1)).to_have_attribute("data-rel", "")  # dave's mark is not carol's
        for key in ["2", "1", "3"]:
            page.keyboard.press(key)
        expect(cards.nth(3)).to_be_focused()
        expect(cards.nth(1)).to_have_attribute("data-conflict", "1")  # carol 1, dave 2: shown, not overwritten
        expect(cards.nth(1).locator(".jconflict")).to_be_visible()
        expect(cards.nth(0)).to_have_attribute("data-conflict", "0")
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("u")  # undo the 3 just given
        expect(cards.nth(2)).to_have_attribute("data-rel", "")
        page.keyboard.press("v")  # full size, served by id
        expect(page.locator("#preview[open] #pvimg")).to_have_attribute("src", f"api/image/{ids1[2]}")
        expect(page.locator("#preview #pvsearch")).to_be_hidden()
        page.keyboard.press("Escape")
        expect(cards.nth(2)).to_be_focused()
        for _ in range(n1 - 2):
            page.keyboard.press("0")
        expect(page.locator(f"#jpool[data-judged='{n1}']")).to_have_count(1)
        expect(page.locator("#jpoolprogress")).to_have_text(f"this pool: {n1} of {n1} judged")
        page.keyboard.press("N")  # the next pool this judge has not finished, in the run's order
        expect(page.locator(f"#jpool[data-query='{second}'] .jcard").first).to_be_focused()
        n2 = cards.count()
        for j in range(n2):
            page.keyboard.press("1" if j % 2 else "0")
        expect(page.locator(f"#jpool[data-judged='{n2}']")).to_have_count(1)
        expect(page.locator("#judge[data-done='2']")).to_have_count(1)
        # blind while judging: no per-model figure in the page, none in any judging answer it received
        judge_text = page.locator("#judge").inner_text()
        assert "judged@" not in judge_text and "P@" not in judge_text and "nDCG" not in judge_text
        assert page.locator(".mhead [data-judged], #jresults tr").count() == 0
        for answer in answers:
            assert not {"mean", "quad", "rank", "models"} & set(json.loads(answer)) and '"quad"' not in answer, answer
        # k changes: the old pool goes at once, the new one follows
        page.fill("#k", "8")
        page.press("#k", "Tab")
        expect(page.locator(f"#jpool[data-query='{second}']")).to_have_count(0, timeout=500)
        expect(page.locator("#jpool[data-query] .jcard")).not_to_have_count(0)
        rows = page.locator("#jpool .jcard")
        cols = len(page.evaluate("getComputedStyle(document.querySelector('#jpool')).gridTemplateColumns").split())
        assert rows.count() > 2 * cols, (rows.count(), cols)
        assert rows.first.bounding_box()["width"] >= 224
        rows.nth(2 * cols).scroll_into_view_if_needed()
        page.mouse.wheel(0, 400)
        page.wait_for_timeout(200)
        third = rows.nth(2 * cols).bounding_box()
        query = page.locator("#jquery img").bounding_box()
        assert third["y"] < 768 and third["y"] + third["height"] > 0, third  # the third row is on screen
        assert query["y"] >= 0 and query["y"] + query["height"] <= 768 and query["width"] >= 300, query
        page.screenshot(path="/tmp/j1-judge.png")
        # asked for: the figures and the verdict's metric with intervals, re-scored from the run's saved lists
        page.fill("#k", str(K))
        page.press("#k", "Tab")
        expect(page.locator("#jpool .jcard")).not_to_have_count(0)
        page.click("#jshow")
        expect(page.locator("#jresults table[data-verdict='1'] tr[data-model='quad']")).to_contain_text("[")
        expect(page.locator("#jresults")).to_contain_text(f"nDCG@{K}")
        browser.close()
    assert errors == [], errors
    store = JudgmentStore(qrels_file, max_grade=3)
    carol = {(r["query"], r["doc"]): r["grade"] for r in store.records() if r["judge"] == "carol"}
    assert carol[first, ids1[0]] == 2 and carol[first, ids1[1]] == 1 and carol[first, ids1[2]] == 0
    assert len([p for p in carol if p[0] == first]) == n1 and len([p for p in carol if p[0] == second]) == n2
    assert f"{first} 0 {ids1[0]} 2" in qrels_file.read_text()  # the TREC file holds the grade
    verdict = server.json("api/judge/verdict?run=0")[1]
    graded = recompare(run, store.qrels(), qrels_file)["evidence"]["quality"]["ndcg_at_k"]
    flat = {q: {d: min(g, 1) for d, g in docs.items()} for q, docs in store.qrels().items()}
    binary = recompare(run, flat, qrels_file)["evidence"]["quality"]["ndcg_at_k"]
    assert verdict["metric"] == "ndcg_at_k" and verdict["judged_queries"] == 2
    for model, iv in verdict["models"].items():  # compare RUN --qrels on the same file: the same means
        assert iv["mean"] == pytest.approx(graded[model]["mean"]) and iv["low"] <= iv["mean"] <= iv["high"]
    assert {m: v["mean"] for m, v in graded.items()} != {m: v["mean"] for m, v in binary.items()}  # gain = grade
    assert verdict["more_queries"] is None or verdict["more_queries"] >= 0


def test_a_page_from_another_site_cannot_write_judgments(judge_env, tmp_path):
    """What a person's browser does when another page they opened posts to the explorer: a text/plain fetch, a
    JSON fetch and a plain HTML form, from a page served on another port (same host: Sec-Fetch-Site same-site) and
    from a file:// page (Origin null). Nothing reaches the judgments; the explorer's own page still writes."""
    import functools
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    from tests.serve_fixture import start_server

    if judge_env["server"] is None:
        judge_env["server"] = start_server(judge_env["run"])
    server = judge_env["server"]
    qrels = judgments_path(judge_env["base"] / "data", "servecheck")
    before = (qrels.read_bytes(), judges_path(qrels).read_bytes()) if qrels.exists() else None
    qid = server.json(f"api/judge/queries?run=0&k={K}")[1]["queries"][3]["id"]
    doc = server.json(f"api/judge/pool/{qid}?k={K}")[1]["docs"][0]["id"]
    body = json.dumps({"query": qid, "doc": doc, "relevance": 1, "judge": "mallory"})
    target = server.url + "api/judge"
    (tmp_path / "attack.html").write_text(
        f"""<!doctype html><form id="f" method="POST" action="{target}" enctype="text/plain">
<input name='{body[:-1]}, "x": "' value='"}}'></form><script>
const body = {json.dumps(body)};
Promise.all([
  fetch("{target}", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}}, body}}),
  fetch("{target}", {{method: "POST", headers: {{"Content-Type": "application/json"}}, body}}).catch(() => null),
]).then(() => {{ document.title = "sent"; document.getElementById("f").submit(); }});
</script>"""
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    refused = []
    try:
        with sync_playwright() as p:
            browser, page, _ = open_page(p, 800, 600)
            page.on("response", lambda r: refused.append(r.status) if r.url == target else None)
            for url in (f"http://127.0.0.1:{other.server_address[1]}/attack.html", (tmp_path / "attack.html").as_uri()):
                with page.expect_navigation(url=target):  # the form's own submission ends on the explorer
                    page.goto(url)
            browser.close()
    finally:
        other.shutdown()
    assert refused and set(refused) == {403}, refused  # the form posts (no-cors fetches are opaque to the page)
    after = (qrels.read_bytes(), judges_path(qrels).read_bytes()) if qrels.exists() else None
    assert after == before and "mallory" not in (after or (b"", b""))[1].decode()
