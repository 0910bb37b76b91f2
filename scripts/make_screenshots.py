"""Make the README's dashboard screenshots: docs/img/dashboard.png and dashboard-playground.png.

Two small evaluations on the bundled mnist-demo go into a temporary store, the dashboard
runs over it on a free localhost port, and Debian's Chromium (driven by Playwright, which
never downloads a browser of its own) photographs the Runs page comparing them and the
Playground after FGSM; the PNGs are quantized to stay well under 300 KB.

    python scripts/make_screenshots.py [--out docs/img] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, sync_playwright

from advlab.dashboard import running_dashboard
from advlab.data import load_dataset
from advlab.evaluation import AttackSpec, ResultStore, evaluate
from advlab.models import load_model

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]  # fmt: skip


def make_store(path: Path) -> list[str]:
    model, data = load_model("mnist-cnn"), load_dataset("mnist-demo", n=64)
    with ResultStore(path) as store:
        runs = [
            evaluate(model, data, [AttackSpec("fgsm")], [0.05, 0.1, 0.2, 0.3], store=store,
                     progress=False),
            evaluate(model, data, [AttackSpec("pgd", params={"steps": 10}), AttackSpec("fgsm")],
                     [0.05, 0.1, 0.2, 0.3], store=store, progress=False),
        ]  # fmt: skip
    return [run.run_id for run in runs]


def settle(page: Page) -> None:
    page.wait_for_timeout(400)
    page.locator("[data-testid=stStatusWidget]").wait_for(state="detached")


def save_small(page: Page, path: Path) -> Path:
    raw = path.with_suffix(".raw.png")
    page.screenshot(path=raw)
    Image.open(raw).convert("RGB").quantize(256).save(path, optimize=True)
    raw.unlink()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "results.sqlite"
        run_ids = make_store(store)
        with running_dashboard(store) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.set_default_timeout(30_000)
            page.goto(url)
            page.get_by_text("2 of 2 runs").wait_for()
            for run_id in run_ids:
                page.get_by_role("combobox", name="Compare runs").click()
                page.get_by_role("option", name=run_id).click()
                settle(page)
            page.keyboard.press("Escape")
            page.set_viewport_size({"width": 1280, "height": 1700})
            page.locator("[data-testid=stVegaLiteChart]").first.wait_for()
            settle(page)
            print(save_small(page, args.out / "dashboard.png"))
            page.locator("[data-testid=stSidebar]").get_by_text("Playground", exact=True).click()
            page.get_by_text("Clean prediction:").wait_for()
            index = page.get_by_label("Image index")
            index.fill("7")
            index.press("Enter")
            settle(page)
            slider = page.get_by_role("slider", name="eps (pixel units)")
            slider.focus()
            for _ in range(43):  # 8/255 -> 51/255
                slider.press("ArrowRight")
            settle(page)
            page.get_by_text("eps = 0.2000 = 51.0/255").wait_for()
            page.set_viewport_size({"width": 1280, "height": 1250})
            print(save_small(page, args.out / "dashboard-playground.png"))
            browser.close()


if __name__ == "__main__":
    main()
