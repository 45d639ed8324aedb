"""Render docs/notebook.md: execute compare_distances.ipynb on a run folder and write it as Markdown with its outputs
(text as code blocks, figures as PNG files in docs/notebook/).

    ONNX_SEARCH_RESULTS is set for the kernel; the run folder's path is replaced by SHOWN in the text outputs.
    .venv/bin/python notebooks/render_page.py RUN_DIR [--shown runs/photos]

The page shows the own-folder tutorial's run (docs/tutorials/own-folder.md). tests/test_docs.py checks that every
code cell on the page is the notebook's current text."""

from __future__ import annotations

import argparse
import base64
import os
from pathlib import Path

import nbclient
import nbformat

REPO = Path(__file__).resolve().parents[1]
HEADER = """# The notebook

`notebooks/compare_distances.ipynb` reviews a finished run in more depth than its report: distance distributions,
raw against calibrated distances, the overlap matrix and rank agreement, label metrics, the queries the models
disagree on most, cost beside quality, and robustness per transform. It reads only the run folder (the stores are
not opened). Open it with any Jupyter front end, or execute it in place with the tools the `notebook` extra installs:

```bash
ONNX_SEARCH_RESULTS=runs/photos .venv/bin/python - <<'EOF'
import nbclient, nbformat
nb = nbformat.read("notebooks/compare_distances.ipynb", as_version=4)
nbclient.NotebookClient(nb, kernel_name="python3").execute()
nbformat.write(nb, "reviewed.ipynb")
EOF
```

`ONNX_SEARCH_RESULTS` names the run folder (default: the demo's, `demo/runs/demo`).
`tests/test_experiment.py::test_notebook_runs_top_to_bottom_on_a_run` executes it on a test run.

Below, the notebook as executed on the run of the [own-folder tutorial](tutorials/own-folder.md): sixteen generated
images, two trained models, perturbed copies as ground truth. It shows what each cell draws and prints, not how
good the models are. This page is made by `notebooks/render_page.py`.

---
"""


def render(run_dir: Path, shown: str, page: Path) -> int:
    nb = nbformat.read(REPO / "notebooks" / "compare_distances.ipynb", as_version=4)
    os.environ["ONNX_SEARCH_RESULTS"] = str(run_dir)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}}
    )
    client.execute()
    img_dir = page.parent / page.stem
    img_dir.mkdir(parents=True, exist_ok=True)
    for old in img_dir.glob("cell-*.png"):
        old.unlink()
    parts, n = [HEADER.strip()], 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":  # the notebook's own headings sit one level below the page's
            text = cell.source.strip()
            parts.append(("#" + text) if text.startswith("#") else text)
            continue
        parts.append("```python\n" + cell.source.strip() + "\n```")
        for o in cell.outputs:
            data = o.get("data", {})
            if "image/png" in data:
                n += 1
                name = f"cell-{n:02d}.png"
                (img_dir / name).write_bytes(base64.b64decode(data["image/png"]))
                parts.append(f"![output {n}]({img_dir.name}/{name})")
            elif "text/markdown" in data:
                parts.append(data["text/markdown"].strip())
            elif o.get("text") or "text/plain" in data:
                text = (o.get("text") or data["text/plain"]).strip().replace(str(run_dir), shown)
                if text:
                    parts.append("```text\n" + text + "\n```")
    page.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="the finished run folder to execute the notebook on")
    ap.add_argument("--shown", default="runs/photos", help="how the run folder's path is shown on the page")
    ap.add_argument("--page", type=Path, default=REPO / "docs" / "notebook.md", help="the page to write")
    args = ap.parse_args()
    print(f"wrote {args.page} with {render(args.run_dir.resolve(), args.shown, args.page)} figures")


if __name__ == "__main__":
    main()
