"""The explorer's page in Debian's headless Chromium (Playwright over a pipe, no browser download) against the
`served` explorer on 127.0.0.1: query, re-query by click, maps with linked selection and the query marked, the
URL state and Back, k validated where it is typed, exclude-self on uploads, axe-core, a 390 px screen, dark mode.
One browser for the module; each test opens its own page."""

import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from onnx_search.ids import image_id
from tests.helpers import open_page

pytest_plugins = ["tests.serve_fixture"]  # the session-wide `served` fixture, shared with test_serve.py

K = 4
KEEP = Path(__file__).resolve().parents[1] / ".cache"  # screenshots for a person to look at
DOCS = Path(__file__).resolve().parents[1] / "docs"  # the README's screenshots (small PNGs)


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # a shared 2-core machine: the first map imports scikit-learn
    with sync_playwright() as p:
        browser, page, errors = open_page(p)
        page.close()
        yield browser
        browser.close()


def new_page(browser, width: int = 1440, height: int = 900, **kw):
    """A page in a fresh context (no cookies carried over) whose console errors land in the list returned."""
    page = browser.new_context(viewport={"width": width, "height": height}, **kw).new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def page_url(served, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"token": served.server.token, **params}.items())
    return f"{served.server.url}?{query}"


def test_the_page_queries_requeries_and_links_the_maps(served, chromium, tmp_path):
    from playwright.sync_api import expect

    images = sorted((served.base / "images").rglob("*.jpg"))
    server = served.server
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(server.url))
    page, errors = new_page(chromium, 1300, 900)
    foreign, failed = [], []
    page.on("response", lambda r: failed.append(f"{r.status} {urlsplit(r.url).path}") if r.status >= 400 else None)
    page.on("request", lambda r: None if r.url.startswith((origin, "blob:", "data:")) else foreign.append(r.url))
    page.goto(f"{server.url}?token={server.token}")
    expect(page.locator("body[data-ready='1']")).to_have_count(1)
    page.fill("#k", str(K))
    page.press("#k", "Tab")

    # upload a query (exclude-self off): k results for each model, the query image itself first
    query = images[7]
    page.uncheck("#exclude")
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

    # exclude-self on: the catalogued photo uploaded again is left out of every column (matched by content hash)
    page.check("#exclude")
    expect(page.locator(f"#columns[data-count='2'][data-excluded='{image_id(query)}']")).to_have_count(1)
    for model in ("mean", "quad"):
        ids = page.locator(f".col[data-model='{model}'] .hit").evaluate_all("els => els.map(e => e.dataset.id)")
        assert len(ids) == K and str(image_id(query)) not in ids

    # click a hit: the page searches from it (its id becomes the query, itself left out)
    target = page.locator(".col[data-model='quad'] .hit").nth(2)
    clicked = target.get_attribute("data-id")
    target.click()
    expect(page.locator(f"#columns[data-query='{clicked}'][data-count='3']")).to_have_count(1)
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
    expect(page.locator(f"canvas[data-query='{clicked}']")).to_have_count(2)  # the query, marked on every map
    # answers that a later choice superseded are dropped: switch projection and models while t-SNE computes
    page.select_option("#method", "tsne")
    page.uncheck("#toggles input[value='quad']")
    page.select_option("#method", "pca")
    page.check("#toggles input[value='quad']")
    for model in ("mean", "quad"):
        assert server.json(f"api/map/{model}?method=tsne&wait=120")[0] == 200  # the superseded ones are ready now
    page.wait_for_timeout(1500)  # the page polls every 0.5 s: it has seen them
    expect(page.locator("canvas[data-method='pca'][data-points]")).to_have_count(2)
    expect(page.locator(".mapbox")).to_have_count(2)
    assert page.evaluate("Object.values(explorer.state.maps).map(m => m.method)") == ["pca", "pca"]
    expect(page.locator(f"canvas[data-query='{clicked}']")).to_have_count(2)
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
    expect(page.locator(".hit")).to_have_count(0)  # the old results do not stay under the rejected file's name
    page.set_input_files("#file", str(images[0]))
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator(".col[data-model='mean'] .hit")).to_have_count(K)
    page.context.close()
    assert failed == ["400 /api/query"], failed  # the bad upload's, shown in the page above
    assert [e for e in errors if "status of 400" not in e] == [], errors
    assert foreign == []
    KEEP.mkdir(exist_ok=True)
    for name in ("search", "requery", "maps", "disagree", "robust"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        shutil.copy(tmp_path / f"{name}.png", KEEP / f"serve-{name}.png")


def _ids(page, model: str) -> list[str]:
    return page.locator(f".col[data-model='{model}'] .hit").evaluate_all("els => els.map(e => e.dataset.id)")


def test_the_url_holds_the_view_and_back_works_and_k_is_checked_where_typed(served, chromium):
    from playwright.sync_api import expect

    images = sorted((served.base / "images").rglob("*.jpg"))
    first = str(image_id(images[2]))
    page, errors = new_page(chromium)
    asked = []
    page.on("request", lambda r: asked.append(r.url) if "/api/query" in r.url else None)
    # a link reproduces the view: query, k and models come from the URL
    page.goto(page_url(served, view="search", q=first, k=3, models="quad"))
    expect(page.locator(f"#columns[data-query='{first}'] .col")).to_have_count(1)
    expect(page.locator(".col[data-model='quad'] .hit")).to_have_count(3)
    assert page.input_value("#k") == "3" and not page.is_checked("#toggles input[value='mean']")
    # a click on a hit is a new entry in the history; Back restores the first query, Forward the second
    second = page.locator(".col[data-model='quad'] .hit").nth(1).get_attribute("data-id")
    page.locator(".col[data-model='quad'] .hit").nth(1).click()
    expect(page.locator(f"#columns[data-query='{second}']")).to_have_count(1)
    assert parse_qs(urlsplit(page.url).query)["q"] == [second]
    page.click("#tabs button[data-tab='judge']")
    expect(page.locator(f"#jpool[data-query='{second}'] .jcard")).not_to_have_count(0)
    assert parse_qs(urlsplit(page.url).query)["view"] == ["judge"]
    page.go_back()
    expect(page.locator("#search")).to_be_visible()
    expect(page.locator(f"#columns[data-query='{second}']")).to_have_count(1)
    page.go_back()
    expect(page.locator(f"#columns[data-query='{first}'] .col[data-model='quad'] .hit")).to_have_count(3)
    assert parse_qs(urlsplit(page.url).query)["q"] == [first]
    page.go_forward()
    expect(page.locator(f"#columns[data-query='{second}']")).to_have_count(1)
    # the same URL in a fresh page gives the same view
    other, other_errors = new_page(chromium)
    other.goto(page.url)
    expect(other.locator(f"#columns[data-query='{second}'] .col[data-model='quad'] .hit")).to_have_count(3)
    assert _ids(other, "quad") == _ids(page, "quad")
    # k out of range: said next to the box, nothing asked, the results and the URL's k stay
    before = len(asked)
    for bad in ("0", "500", "2.5"):
        page.fill("#k", bad)
        page.press("#k", "Enter")
        expect(page.locator("#kmsg")).to_contain_text("k must be a whole number from 1 to 100")
        assert page.get_attribute("#k", "aria-invalid") == "true"
    page.wait_for_timeout(300)
    assert len(asked) == before and parse_qs(urlsplit(page.url).query)["k"] == ["3"]
    expect(page.locator(".col[data-model='quad'] .hit")).to_have_count(3)
    page.fill("#k", "2")
    page.press("#k", "Enter")
    expect(page.locator("#kmsg")).to_be_hidden()
    expect(page.locator(".col[data-model='quad'] .hit")).to_have_count(2)
    page.context.close()
    other.context.close()
    assert errors == [] and other_errors == [], errors + other_errors


def test_percentile_and_z_equal_the_runs_for_the_same_hits(served, chromium):
    """The explorer calibrates each hit against the served run's own baseline, so it shows results.json's values."""
    import json

    from playwright.sync_api import expect

    results = json.loads((served.run / "results.json").read_text())
    page, errors = new_page(chromium)
    compared = 0
    for q in results["queries"][:2]:
        assert q["excluded"]  # the run left each query out of its own hits, as exclude-self does here
        page.goto(page_url(served, view="search", q=q["id"], k=results["top_k"]))
        expect(page.locator(f"#columns[data-query='{q['id']}'] .hit")).to_have_count(2 * results["top_k"])
        for h in (h for h in results["hits"] if h["query"] == q["query"]):
            card = page.locator(f".col[data-model='{h['model']}'] .hit[data-id='{h['id']}']")
            assert float(card.get_attribute("data-pct")) == pytest.approx(h["percentile"], abs=1e-6)
            assert float(card.get_attribute("data-z")) == pytest.approx(h["z"], abs=1e-6)
            pct = f"pct {100 * h['percentile']:.1f}% · z {h['z']:.2f}"
            expect(card).to_contain_text(pct)
            compared += 1
    assert compared == 2 * 2 * results["top_k"]
    page.context.close()
    assert errors == [], errors


def test_model_headers_show_weights_dimension_size_and_quality(served, chromium):
    """Each column says what the model is: RANDOM WEIGHTS where /api/models says so (here made so for one model on
    the wire, since the fixture's tiny models have no weights), its dimension, collection size, the run's figure."""
    import json

    from playwright.sync_api import expect

    page, errors = new_page(chromium)
    info = served.server.json("api/models")[1]

    def random_quad(route) -> None:
        body = route.fetch().json()
        for m in body["models"]:
            m["random_weights"] = m["name"] == "quad"
        route.fulfill(json=body)

    page.route("**/api/models*", random_quad)
    qid = str(image_id(sorted((served.base / "images").rglob("*.jpg"))[4]))
    page.goto(page_url(served, q=qid, k=K))
    expect(page.locator(".col[data-model='quad'] .random")).to_have_text("RANDOM WEIGHTS")
    expect(page.locator(".col[data-model='mean'] .random")).to_have_count(0)
    for m in info["models"]:
        head = page.locator(f".col[data-model='{m['name']}'] .mhead")
        expect(head).to_contain_text(f"{m['dim']}-d · {m['images']} images")
        q = m["quality"]
        expect(head.locator("[data-quality]")).to_contain_text(f"{q['mean']:.3f} [{q['low']:.3f}, {q['high']:.3f}]")
    assert json.dumps(info).count('"random_weights": true') == 0  # the server itself says the tiny models are not
    page.context.close()
    assert errors == [], errors


def _axe_serious(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {len(v['nodes'])} node(s)" for v in found if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("width", [1440, 390])
def test_every_view_is_accessible_and_fits_the_screen(served, chromium, width, tmp_path):
    """axe-core finds no serious or critical violation; no horizontal overflow; the file input and the hit cards
    are reached with Tab and used with the keyboard; images say what they show; the screenshots are kept."""
    from playwright.sync_api import expect

    images = sorted((served.base / "images").rglob("*.jpg"))
    qid = str(image_id(images[11]))
    page, errors = new_page(chromium, width, 900)
    # file choosers are intercepted from the start (Playwright turns that on with the first listener, not at once)
    page.on("filechooser", lambda chooser: None)
    page.goto(page_url(served, k=K))
    expect(page.locator("#ggrid button")).to_have_count(len(images))  # the start gallery
    page.select_option("#glabel", "circles")  # its label filter
    expect(page.locator("#ggrid button")).to_have_count(sum(p.parent.name == "circles" for p in images))
    assert all(t.startswith("circles, ") for t in page.locator("#ggrid img").evaluate_all("els => els.map(e => e.alt)"))
    page.select_option("#glabel", "")
    expect(page.locator("#ggrid button")).to_have_count(len(images))
    shots = {}
    # keyboard only: Tab reaches the file input, and a gallery image opens its preview, which searches from it
    reached = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id || document.activeElement.className"))
    assert "file" in reached
    page.focus(f"#ggrid button[data-id='{qid}']")
    page.keyboard.press("Enter")
    expect(page.locator("#preview[open] #pvimg")).to_have_attribute(
        "alt", f"{images[11].parent.name}, {images[11].name}"
    )
    assert _axe_serious(page) == []
    shots["preview"] = page.screenshot()
    page.keyboard.press("Enter")  # the dialog's focused button: search from this image
    expect(page.locator(f"#columns[data-query='{qid}'] .col")).to_have_count(2)
    cards = page.locator(".hit")
    expect(cards).to_have_count(2 * K)
    alts = page.locator("img").evaluate_all("els => els.filter(e => e.offsetParent).map(e => e.alt)")
    assert alts and all(a.strip() for a in alts), alts
    assert cards.first.get_attribute("tabindex") == "0"
    shots["search"] = page.screenshot(full_page=True)
    views = {"search": None}
    page.click("#tabs button[data-tab='judge']")
    expect(page.locator(f"#jpool[data-query='{qid}'] .jcard")).not_to_have_count(0)
    rels = page.locator("#jpool .jcard").evaluate_all("els => els.map(e => e.dataset.rel)")
    at = rels.index("")  # the focus starts on the first image not judged yet (an earlier width judged some)
    expect(page.locator("#jpool .jcard").nth(at)).to_be_focused()
    page.keyboard.press("1")  # judged with the keyboard: this image relevant, the next one not
    expect(page.locator("#jpool .jcard").nth(at + 1)).to_be_focused()
    page.keyboard.press("0")
    expect(page.locator("#jpool .jcard").nth(at + 1)).to_have_attribute("data-rel", "0")
    got = page.locator("#jpool .jcard").evaluate_all("els => els.map(e => e.dataset.rel)")
    assert got[at : at + 2] == ["1", "0"] and got[:at] == rels[:at]
    expect(page.locator("#jresults tr")).to_have_count(0)  # blind: per-model figures only when asked
    page.click("#jshow")
    expect(page.locator("#jresults tr[data-model='mean']").first).to_be_visible()
    views["judge"] = page.screenshot(full_page=True)
    page.click("#tabs button[data-tab='maps']")
    expect(page.locator(f"canvas[data-query='{qid}']")).to_have_count(2)
    views["maps"] = page.screenshot(full_page=True)
    for view in ("search", "judge", "maps"):
        page.click(f"#tabs button[data-tab='{view}']")
        expect(page.locator(f"#{view}")).to_be_visible()
        assert page.evaluate("document.scrollingElement.scrollWidth") <= width, view
        assert _axe_serious(page) == [], view
    # a hit card is used with the keyboard: focus it, Enter searches from it
    page.click("#tabs button[data-tab='search']")
    target = page.locator(".col[data-model='mean'] .hit").nth(1)
    target_id = target.get_attribute("data-id")
    target.focus()
    page.keyboard.press("Enter")
    expect(page.locator(f"#columns[data-query='{target_id}']")).to_have_count(1)
    # the judgments made above show beside each model, with their interval
    expect(page.locator(".col[data-model='mean'] [data-judged]")).to_contain_text(f"judged@{K} ")
    # the file input is used with the keyboard too: Enter on it opens the chooser, the choice is searched
    page.focus("#file")
    with page.expect_file_chooser(timeout=10_000) as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(str(images[5]))
    expect(page.locator(f".col[data-model='quad'] .hit[data-id='{image_id(images[5])}']")).to_have_count(0)
    expect(page.locator("#qname")).to_contain_text(images[5].name)
    page.context.close()
    # dark mode: the page follows prefers-color-scheme and stays accessible (contrast included)
    dark, dark_errors = new_page(chromium, width, 900, color_scheme="dark")
    dark.goto(page_url(served, view="search", q=qid, k=K))
    expect(dark.locator(".hit")).to_have_count(2 * K)
    background = dark.evaluate("getComputedStyle(document.body).backgroundColor")
    assert sum(int(c) for c in background[4:-1].split(",")[:3]) < 120, background
    assert _axe_serious(dark) == []
    shots["dark"] = dark.screenshot()
    dark.context.close()
    assert errors == [] and dark_errors == [], errors + dark_errors
    KEEP.mkdir(exist_ok=True)
    for name, png in {**shots, **{k: v for k, v in views.items() if v}}.items():
        (KEEP / f"explorer-{name}-{width}.png").write_bytes(png)
