"""`advlab dashboard` in a real headless Chromium (Debian's, driven by Playwright).

The dashboard runs as a user starts it (``advlab dashboard --port P --store S``) over a
temporary store of two small evaluations; the test lists the runs, compares them, runs
FGSM in the playground and uploads two malformed images, saving a screenshot of each
page under its tmp folder. Skipped when chromium, Playwright or Streamlit is absent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("streamlit")
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("ADVLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium installed")
# Without the background-networking flags Chromium keeps calling out of this closed network.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]  # fmt: skip
TIMEOUT_MS = 30_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def png_bomb(path: Path, side: int = 20000) -> Path:
    """A valid 1-bit PNG of side x side black pixels: tens of KB on disk, 400 Mpixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    row = b"\x00" * (1 + side // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
                     + chunk(b"IEND", b""))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    from advlab.data import load_dataset
    from advlab.evaluation import AttackSpec, ResultStore, evaluate
    from advlab.models import load_model

    path = tmp_path_factory.mktemp("store") / "results.sqlite"
    model = load_model("mnist-cnn")
    data = load_dataset("mnist-demo", n=12)
    with ResultStore(path) as results:
        first = evaluate(model, data, [AttackSpec("fgsm")], [0.05, 0.1], store=results,
                         progress=False)  # fmt: skip
        second = evaluate(model, data, [AttackSpec("pgd", params={"steps": 2})], [0.1, 0.2],
                          store=results, progress=False)  # fmt: skip
    return path, [first.run_id, second.run_id]


@pytest.fixture(scope="module")
def server(store: tuple[Path, list[str]]) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "advlab.cli.main", "dashboard", "--port", str(port),
               "--store", str(store[0])]  # fmt: skip
    log = store[0].with_name("dashboard.log")
    with log.open("wb") as output:  # a file, not a pipe: nothing can fill up and block it
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the dashboard did not start in 40 s"
            time.sleep(0.3)
        yield url
    finally:  # the server and anything it started: its own process group
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def goto_page(page: object, name: str) -> None:
    page.locator("[data-testid=stSidebar]").get_by_text(name, exact=True).click()  # type: ignore[attr-defined]
    page.get_by_role("heading", name=name).wait_for(timeout=TIMEOUT_MS)  # type: ignore[attr-defined]


def settle(page: object) -> None:
    """Wait until Streamlit has finished running the script."""
    page.wait_for_timeout(300)  # type: ignore[attr-defined]
    page.locator("[data-testid=stStatusWidget]").wait_for(state="detached", timeout=TIMEOUT_MS)  # type: ignore[attr-defined]


def test_dashboard_in_chromium(server: str, store: tuple[Path, list[str]], tmp_path: Path) -> None:
    first, second = store[1]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        # Streamlit scrolls inside its own container: a tall window shows whole pages
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server)

        # Runs: both stored runs are listed, and two are compared side by side
        page.get_by_text("2 of 2 runs").wait_for()
        compare = page.get_by_role("combobox", name="Compare runs")
        for run_id in (first, second):
            compare.click()
            page.get_by_role("option", name=run_id).click()
            settle(page)
        page.keyboard.press("Escape")
        page.get_by_text("Comparing 2 runs").wait_for()
        page.get_by_text("Robust accuracy vs eps").first.wait_for()
        page.get_by_text("— mnist-cnn on mnist-demo").first.wait_for()
        page.screenshot(path=shots / "runs.png", full_page=True)

        checks = {
            "Attack analytics": "Clean vs adversarial predictions",
            "Examples": "Page (of 1)",
            "Defenses": "No finished defend run",
            "Transferability": "No finished transfer run",
        }
        for name, text in checks.items():
            goto_page(page, name)
            settle(page)
            page.get_by_text(text).first.wait_for()
            if name == "Examples":  # craft the page's images again, with a progress bar
                page.get_by_role("button", name="Show this page's images").click()
                page.get_by_text("#11 clean").wait_for()
            assert page.locator("[data-testid=stException]").count() == 0, name
            page.screenshot(path=shots / f"{name.lower().replace(' ', '_')}.png", full_page=True)

        # Playground: FGSM at eps 10/255 on image 3 shows both predictions
        goto_page(page, "Playground")
        page.get_by_text("Clean prediction:").wait_for()
        index = page.get_by_label("Image index")
        index.fill("3")
        index.press("Enter")
        settle(page)
        slider = page.get_by_role("slider", name="eps (pixel units)")
        slider.focus()
        for _ in range(2):
            slider.press("ArrowRight")
        settle(page)
        page.get_by_text("eps = 0.0392 = 10.0/255").wait_for()
        assert page.get_by_text("Clean prediction:").is_visible()
        assert page.get_by_text("Adversarial prediction:").is_visible()
        assert page.get_by_text("Download adversarial PNG").is_visible()
        page.screenshot(path=shots / "playground.png", full_page=True)

        # Malformed uploads: a clear message each, and the app stays up
        page.get_by_text("upload", exact=True).nth(1).click()
        settle(page)
        fake = tmp_path / "notes.png"
        fake.write_text("this is not an image\n")
        chooser = page.locator("[data-testid=stFileUploaderDropzoneInput]")
        chooser.set_input_files(str(fake))
        page.get_by_text("is not a PNG or JPEG image").wait_for()
        page.screenshot(path=shots / "upload_text.png", full_page=True)
        bomb = png_bomb(tmp_path / "bomb.png")
        assert bomb.stat().st_size < 200_000
        page.get_by_role("button", name="Remove").first.click()
        settle(page)
        chooser.set_input_files(str(bomb))
        page.get_by_text("20000x20000 pixels").wait_for()
        page.screenshot(path=shots / "upload_bomb.png", full_page=True)
        page.get_by_role("button", name="Remove").first.click()
        settle(page)
        digit = tmp_path / "digit.png"
        Image.new("L", (56, 56), 0).save(digit)  # a real PNG: resized to 28x28 and attacked
        chooser.set_input_files(str(digit))
        page.get_by_text("No label for an uploaded image").wait_for()
        page.get_by_text("Adversarial prediction:").wait_for()
        page.screenshot(path=shots / "upload_ok.png", full_page=True)

        goto_page(page, "Runs")  # still alive
        page.get_by_text("2 of 2 runs").wait_for()
        browser.close()
    for name in ("runs", "attack_analytics", "playground", "upload_text", "upload_bomb"):
        assert (shots / f"{name}.png").stat().st_size > 1000
