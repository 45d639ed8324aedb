"""The explorer's page in Debian's headless Chromium (Playwright over a pipe, no browser download) against the
`served` explorer on 127.0.0.1: query, re-query by click, maps with linked selection, no console errors."""

import shutil
from pathlib import Path
from urllib.parse import urlsplit

from onnx_search.ids import image_id
from tests.helpers import open_page

pytest_plugins = ["tests.serve_fixture"]  # the session-wide `served` fixture, shared with test_serve.py

K = 4
KEEP = Path(__file__).resolve().parents[1] / ".cache"  # screenshots for a person to look at


def test_the_page_queries_requeries_and_links_the_maps(served, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # a shared 2-core machine: the first map imports scikit-learn
    images = sorted((served.base / "images").rglob("*.jpg"))
    server = served.server
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(server.url))
    with sync_playwright() as p:
        browser, page, errors = open_page(p, 1300, 900)
        foreign, failed = [], []
        page.on("response", lambda r: failed.append(f"{r.status} {urlsplit(r.url).path}") if r.status >= 400 else None)
        page.on("request", lambda r: None if r.url.startswith((origin, "blob:", "data:")) else foreign.append(r.url))
        page.goto(f"{server.url}?token={server.token}")
        expect(page.locator("body[data-ready='1']")).to_have_count(1)
        page.fill("#k", str(K))
        page.press("#k", "Tab")

        # upload a query: k results for each model, the query image itself first
        query = images[7]
        page.set_input_files("#file", str(query))
        expect(page.locator("#columns[data-count='1']")).to_have_count(1)
        cols = page.locator(".col")
        expect(cols).to_have_count(2)
        for model in ("mean", "quad"):
            hits = page.locator(f".col[data-model='{model}'] .hit")
            expect(hits).to_have_count(K)
            assert hits.first.get_attribute("data-id") == str(image_id(query))
        expect(page.locator(".col[data-model='mean'] .hit .also").first).to_have_text("also quad")
        page.screenshot(path=str(tmp_path / "search.png"))

        # click a hit: the page searches from it (its id becomes the query, itself left out)
        target = page.locator(".col[data-model='quad'] .hit").nth(2)
        clicked = target.get_attribute("data-id")
        target.click()
        expect(page.locator(f"#columns[data-query='{clicked}'][data-count='2']")).to_have_count(1)
        for model in ("mean", "quad"):
            ids = page.locator(f".col[data-model='{model}'] .hit").evaluate_all("els => els.map(e => e.dataset.id)")
            assert len(ids) == K and clicked not in ids  # exclude-self is on
        page.screenshot(path=str(tmp_path / "requery.png"))

        # one model switched off: only the other's column is asked for
        page.uncheck("#toggles input[value='quad']")
        expect(page.locator(".col")).to_have_count(1)
        page.check("#toggles input[value='quad']")
        expect(page.locator(".col")).to_have_count(2)

        # maps: one point per collection image on each; a selection shows on the other map too
        page.click("#tabs button[data-tab='maps']")
        for model in ("mean", "quad"):
            expect(page.locator(f"canvas[data-model='{model}'][data-points='{len(images)}']")).to_have_count(1)
        one = str(image_id(images[3]))
        x, y = page.evaluate(f"explorer.pointXY('mean', '{one}')")
        page.mouse.click(x, y)
        picked = page.evaluate("explorer.selected()")
        assert len(picked) == 1
        expect(page.locator("canvas[data-model='quad'][data-selected='1']")).to_have_count(1)
        # a lasso around the left half of the first map
        box = page.locator("canvas[data-model='mean']").bounding_box()
        left, top, w, h = box["x"], box["y"], box["width"], box["height"]
        path = [(left + 2, top + 2), (left + w / 2, top + 2), (left + w / 2, top + h - 2), (left + 2, top + h - 2)]
        page.mouse.move(*path[0])
        page.mouse.down()
        for pt in [*path[1:], path[0]]:
            page.mouse.move(*pt, steps=4)
        page.mouse.up()
        picked = page.evaluate("explorer.selected()")
        inside = page.evaluate(
            "(() => { const m = explorer.state.maps.mean; return m.ids.filter((_, i) => m.xy[2*i] <= 0.5); })()"
        )
        assert 0 < len(picked) < len(images) and set(inside) <= set(picked)
        assert page.locator("canvas[data-model='quad']").get_attribute("data-selected") == str(len(picked))
        assert page.locator("#selstrip img").count() == len(picked)
        page.screenshot(path=str(tmp_path / "maps.png"))

        # the disagreement browser lists the run's queries, least agreement first
        page.click("#tabs button[data-tab='disagree']")
        expect(page.locator(".drow")).to_have_count(6)
        rbos = page.locator(".drow").evaluate_all("els => els.map(e => parseFloat(e.dataset.rbo))")
        assert rbos == sorted(rbos)
        page.screenshot(path=str(tmp_path / "disagree.png"))
        page.click("#tabs button[data-tab='robust']")
        expect(page.locator("#rlist > *").first).to_be_visible()
        page.screenshot(path=str(tmp_path / "robust.png"))

        # a bad upload: a message in the page, and the next query still answers
        bad = tmp_path / "notes.jpg"
        bad.write_text("not a picture")
        page.click("#tabs button[data-tab='search']")
        page.set_input_files("#file", str(bad))
        expect(page.locator("#error")).to_contain_text("not a usable image")
        page.set_input_files("#file", str(images[0]))
        expect(page.locator("#error")).to_be_hidden()
        expect(page.locator(".col[data-model='mean'] .hit")).to_have_count(K)
        browser.close()
    assert failed == ["400 /api/query"], failed  # the bad upload's, shown in the page above
    assert [e for e in errors if "status of 400" not in e] == [], errors
    assert foreign == []
    KEEP.mkdir(exist_ok=True)
    for name in ("search", "requery", "maps", "disagree", "robust"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        shutil.copy(tmp_path / f"{name}.png", KEEP / f"serve-{name}.png")
