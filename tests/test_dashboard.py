"""The dashboard's logic without a browser: upload checks, store access, the playground."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advlab.dashboard import data as dash
from advlab.dashboard import lab
from advlab.dashboard.uploads import (
    MAX_IMAGE_BYTES,
    UploadError,
    check_image,
    image_to_array,
    model_suffix,
    save_model_upload,
)
from advlab.results import DefenseComparison, Evaluation, TransferMatrix


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb_header(side: int) -> bytes:
    """A PNG whose header claims side x side pixels (its data is cut short)."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + header) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + header + crc


# -- uploads -------------------------------------------------------------------------------
def test_a_png_and_a_jpeg_are_read() -> None:
    assert check_image(_png((20, 10))).size == (20, 10)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="JPEG")
    assert check_image(buffer.getvalue(), "x.jpg").mode == "RGB"
    assert check_image(_png((5, 5), "L")).mode == "L"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"this is text, named .png\n", "not a PNG or JPEG"),
        (b"GIF89a" + b"\x00" * 20, "not a PNG or JPEG"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "could not be read"),
        (_bomb_header(20000), "20000x20000 pixels"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * (MAX_IMAGE_BYTES + 1), "images up to"),
    ],
)
def test_bad_images_get_a_clear_message(content: bytes, message: str) -> None:
    with pytest.raises(UploadError, match=message):
        check_image(content, "x.png")


def test_the_pixel_limit_is_checked_before_decoding() -> None:
    with pytest.raises(UploadError, match="64x64 pixels"):
        check_image(_png((64, 64)), max_pixels=1000)


def test_an_image_is_fitted_to_the_model() -> None:
    image = check_image(_png((40, 30)))
    gray = image_to_array(image, (1, 28, 28))
    colour = image_to_array(image, (3, 32, 32))
    assert gray.shape == (1, 28, 28) and colour.shape == (3, 32, 32)
    assert gray.dtype == np.float32 and 0 <= gray.min() and gray.max() <= 1


def test_model_uploads_are_known_by_their_bytes(tmp_path: Path) -> None:
    header = b'{"__metadata__":{}}'
    safetensors = len(header).to_bytes(8, "little") + header
    assert model_suffix(safetensors, "m.bin") == ".safetensors"
    assert model_suffix(b"PK\x03\x04rest", "m.pt") == ".pt"
    with pytest.raises(UploadError, match="neither a safetensors"):
        model_suffix(b"\x80\x04pickle", "m.pt")
    path = save_model_upload(safetensors, "m.safetensors", tmp_path)
    assert path.suffix == ".safetensors" and path.read_bytes() == safetensors


# -- data access -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Evaluation]:
    from advlab.data import load_dataset
    from advlab.evaluation import AttackSpec, ResultStore, evaluate
    from advlab.models import load_model

    path = tmp_path_factory.mktemp("store") / "results.sqlite"
    with ResultStore(path) as results:
        evaluation = evaluate(load_model("mnist-cnn"), load_dataset("mnist-demo", n=8),
                              [AttackSpec("fgsm")], [0.1, 0.3], store=results,
                              progress=False)  # fmt: skip
    return path, evaluation


def test_runs_are_listed_with_their_kind(store: tuple[Path, Evaluation]) -> None:
    path, evaluation = store
    runs = dash.DashboardData(path).runs()
    assert [run.run_id for run in runs] == [evaluation.run_id]
    run = runs[0]
    assert (run.kind, run.status, run.model, run.n) == ("evaluate", "finished", "mnist-cnn", 8)
    assert run.clean_accuracy == evaluation.clean_accuracy
    assert run.row()["eps"] == "0.1, 0.3"


def test_a_run_reads_back_typed_with_its_rows(store: tuple[Path, Evaluation]) -> None:
    path, evaluation = store
    data = dash.DashboardData(path)
    result = data.result(evaluation.run_id[:6])
    assert isinstance(result, Evaluation)
    assert result.to_dict() == evaluation.to_dict()
    clean = data.clean(evaluation.run_id, 8)
    rows = data.outcomes(evaluation.run_id, "fgsm-linf", 0.3, 8)
    assert rows.success.sum() / clean.correct.sum() == pytest.approx(
        evaluation.result("fgsm", 0.3).attack_success_rate
    )
    matrix = dash.confusion(clean.pred, rows.adv_pred, 10)
    assert matrix.sum() == 8 and matrix.shape == (10, 10)
    assert set(data.examples(evaluation.run_id)) == {("fgsm-linf", 0.1), ("fgsm-linf", 0.3)}
    curves = dash.robust_curves(evaluation)
    assert {row["attack"] for row in curves} == {"fgsm-linf", "worst case"}
    assert [row["robust accuracy"] for row in curves if row["attack"] == "worst case"] == [
        evaluation.worst_case[0.1],
        evaluation.worst_case[0.3],
    ]


def test_a_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(dash.AdvlabError, match="no results store"):
        dash.DashboardData(tmp_path / "none.sqlite").runs()


def test_kinds_are_told_by_content() -> None:
    assert dash.kind_of({"kind": "transfer"}) == "transfer"
    assert dash.kind_of({"kind": "defense-comparison"}) == "defend"
    assert dash.kind_of({"detector": {}, "results": []}) == "detect"
    assert dash.kind_of({"results": [], "worst_case": {}}) == "evaluate"
    assert dash.kind_of({"architecture": "x", "history": []}) == "train"
    assert dash.kind_of({"other": 1}) == "unknown"
    assert isinstance(dash.read_result({"kind": "transfer", "cells": []}), TransferMatrix)
    assert isinstance(dash.read_result({"kind": "defense-comparison"}), DefenseComparison)
    assert dash.read_result({"other": 1}) is None


def test_filters() -> None:
    def run(run_id: str, kind: dash.Kind, status: str = "finished") -> dash.StoredRun:
        return dash.StoredRun(run_id, kind, status, "", "mnist-cnn", "mnist-demo", 8,
                              ("pgd-linf",), (0.1,), 1.0)  # fmt: skip

    runs = [run("a1", "evaluate"), run("b2", "transfer"), run("c3", "evaluate", "running")]
    assert [r.run_id for r in dash.filter_runs(runs, ["evaluate"])] == ["a1", "c3"]
    assert [r.run_id for r in dash.filter_runs(runs, finished_only=True)] == ["a1", "b2"]
    assert [r.run_id for r in dash.filter_runs(runs, text="B2")] == ["b2"]
    assert len(dash.filter_runs(runs, text="PGD")) == 3


# -- playground ------------------------------------------------------------------------------
def test_the_playground_attacks_one_image() -> None:
    from advlab.data import load_dataset
    from advlab.models import load_model

    model = load_model("mnist-cnn")
    data = load_dataset("mnist-demo", n=4)
    image = data.pixels[0].float().numpy() / 255
    label = int(data.labels[0])
    outcome = lab.run_playground(model, image, label, "fgsm", 0.3)
    assert outcome.adversarial.shape == image.shape
    assert outcome.linf == pytest.approx(0.3, abs=1e-5)
    assert len(outcome.clean_top) == 5 and len(outcome.adv_top) == 5
    assert 0 <= outcome.amplified.min() and outcome.amplified.max() <= 1
    targeted = lab.run_playground(
        model, image, label, "pgd", 0.3, steps=20, target=(label + 1) % 10
    )
    assert targeted.success == (targeted.adv_top[0][0] == str((label + 1) % 10))
    assert Image.open(io.BytesIO(lab.png_bytes(outcome.adversarial))).size == (28, 28)
    assert lab.figure_png(outcome).startswith(b"\x89PNG")
    assert lab.predict(model, image) == int(outcome.clean_top[0][0])


# -- model uploads ---------------------------------------------------------------------------
ZOO = Path(__file__).resolve().parents[1] / "src" / "advlab" / "zoo"


def test_uploaded_models_load(tmp_path: Path) -> None:
    import torch

    from advlab.dashboard.uploads import load_model_upload
    from advlab.models import load_model

    weights = (ZOO / "mnist-cnn.safetensors").read_bytes()
    sidecar = (ZOO / "mnist-cnn.json").read_bytes()
    image = np.zeros((1, 28, 28), dtype=np.float32)
    reference = lab.top_k(load_model("mnist-cnn"), torch.as_tensor(image), [])
    with_sidecar = load_model_upload(weights, "net.safetensors", sidecar=sidecar)
    with_arch = load_model_upload(weights, "net.safetensors", architecture="mnist-cnn")
    for model in (with_sidecar, with_arch):
        top = lab.top_k(model, torch.as_tensor(image), [])
        assert [name for name, _ in top] == [name for name, _ in reference]
        assert [p for _, p in top] == pytest.approx([p for _, p in reference])
    scripted = torch.jit.trace(load_model("mnist-cnn").eval(), torch.zeros(1, 1, 28, 28))
    path = tmp_path / "net.pt"
    scripted.save(str(path))
    loaded = load_model_upload(path.read_bytes(), "net.pt")
    assert lab.class_names(loaded, image) == [str(i) for i in range(10)]
    with pytest.raises(UploadError, match="weights only"):
        load_model_upload(weights, "net.safetensors")
    with pytest.raises(UploadError, match="could not be loaded"):
        load_model_upload(weights, "net.safetensors", architecture="cifar-resnet20")
    with pytest.raises(UploadError, match="could not be loaded"):
        load_model_upload(b"PK\x03\x04" + b"\x00" * 64, "broken.pt")


# -- the pages of the other run kinds (Streamlit's AppTest, no browser) -----------------------
def _stored_kinds(path: Path) -> None:
    from advlab.evaluation.store import ResultStore

    cell = {"attack": "fgsm", "key": "fgsm-linf", "norm": "linf", "eps": 0.1}
    transfer = {
        "kind": "transfer", "dataset": "mnist-demo", "split": "test", "n": 8, "seed": 0,
        "sources": ["a", "b"], "targets": ["a", "b"], "epsilons": [0.1],
        "cells": [{**cell, "source": s, "target": t, "white_box": s == t,
                   "success_rate": 0.9 if s == t else 0.3} for s in "ab" for t in "ab"],
    }  # fmt: skip
    row = {"robust_accuracy": 0.5, "adaptive_robust_accuracy": 0.2, "worst_attack": "bpda",
           "gap": 0.3, "gap_flagged": True}  # fmt: skip
    defend = {
        "kind": "defense-comparison", "model": "mnist-cnn", "dataset": "mnist-demo", "n": 8,
        "findings": ["jpeg looks robust only against the plain attack"],
        "rows": [
            {"label": "undefended", "kind": "undefended", "clean_accuracy": 1.0,
             "cells": [{**cell, **row, "adaptive_robust_accuracy": 0.5}], "checks": None},
            {"label": "jpeg", "kind": "preprocess", "clean_accuracy": 0.9,
             "cells": [{**cell, **row}],
             "checks": [{"name": "unbounded", "status": "warn", "numbers": {},
                         "explanation": "accuracy stays above zero at large eps"}]},
        ],
    }  # fmt: skip
    detect = {
        "model": "mnist-cnn", "dataset": "mnist-demo", "n": 8, "clean_accuracy": 1.0,
        "detector": {"detector": "squeeze", "fpr": 0.05}, "false_positive_rate": 0.04,
        "results": [{**cell, "adaptive": False, "detection_rate": 0.8, "auc": 0.9,
                     "roc": {"fpr": [0.0, 0.1, 1.0], "tpr": [0.0, 0.8, 1.0]}}],
    }  # fmt: skip
    with ResultStore(path) as store:
        for run_id, summary in (("t1", transfer), ("d1", defend), ("x1", detect)):
            store.start_run(run_id, {"kind": run_id}, {}, 1)
            store.finish_run(run_id, summary)


def test_defense_transfer_and_detection_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from advlab.dashboard import APP_FILE
    from advlab.evaluation.store import default_store_path

    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path))
    _stored_kinds(default_store_path())
    runs = dash.DashboardData(default_store_path()).runs()
    assert sorted(run.kind for run in runs) == ["defend", "detect", "transfer"]
    app = AppTest.from_file(str(APP_FILE), default_timeout=60)
    app.run()
    assert not app.exception
    app.sidebar.radio(key="page").set_value("Defenses").run()
    assert not app.exception and not app.error
    assert any("accuracy stays above zero" in w.value for w in app.warning)
    assert any("jpeg looks robust" in m.value for m in app.markdown)
    assert any("detector squeeze" in c.value for c in app.caption)
    app.sidebar.radio(key="page").set_value("Transferability").run()
    assert not app.exception and not app.error
    assert any("diagonal is white-box" in c.value for c in app.caption)
    app.sidebar.radio(key="page").set_value("Runs").run()
    app.multiselect(key="runs_compare").set_value(["t1", "d1", "x1"]).run()
    assert not app.exception and not app.error
    shown = " ".join(m.value for m in app.markdown)
    for title in ("Defenses", "Transfer success rate", "Detection ROC"):
        assert title in shown


def test_attack_analytics_page_with_a_black_box_attack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from advlab.dashboard import APP_FILE
    from advlab.data import load_dataset
    from advlab.evaluation import AttackSpec, ResultStore, evaluate
    from advlab.evaluation.store import default_store_path
    from advlab.models import load_model

    monkeypatch.setenv("ADVLAB_HOME", str(tmp_path))
    square = AttackSpec("square", params={"max_queries": 30})
    with ResultStore(default_store_path()) as store:
        evaluate(load_model("mnist-cnn"), load_dataset("mnist-demo", n=4),
                 [AttackSpec("fgsm"), square], [0.3], store=store, progress=False)  # fmt: skip
    app = AppTest.from_file(str(APP_FILE), default_timeout=60)
    app.run()
    app.sidebar.radio(key="page").set_value("Attack analytics").run()
    assert not app.exception and not app.error
    assert any("Clean vs adversarial" in m.value for m in app.markdown)
    assert not any("Queries to success" in m.value for m in app.markdown)  # fgsm: white-box
    app.selectbox(key="attacks_unit_attack").set_value(square.key).run()
    assert not app.exception and not app.error
    assert any("Queries to success" in m.value and "budget 30" in m.value for m in app.markdown)
    app.sidebar.radio(key="page").set_value("Examples").run()
    assert not app.exception and not app.error


def test_the_command_line_starts_streamlit_on_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    from typer.testing import CliRunner

    from advlab.cli.main import app
    from advlab.dashboard import APP_FILE, streamlit_command

    command = streamlit_command("127.0.0.1", 8765, tmp_path / "s.sqlite")
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == str(APP_FILE)
    options = dict(zip(command[5::2], command[6::2], strict=False))
    assert options["--server.address"] == "127.0.0.1" and options["--server.port"] == "8765"
    assert command[-2:] == ["--store", str(tmp_path / "s.sqlite")]
    seen: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda args: seen.append(args) or 0)
    monkeypatch.setattr(os, "execv", lambda path, args: seen.append(args))
    result = CliRunner().invoke(app, ["dashboard", "--host", "0.0.0.0", "--port", "9000",
                                      "--store", str(tmp_path / "x.sqlite")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert seen == [streamlit_command("0.0.0.0", 9000, tmp_path / "x.sqlite")]


def test_the_run_list_is_read_again_when_the_store_changes(tmp_path: Path) -> None:
    from advlab.evaluation.store import ResultStore

    path = tmp_path / "results.sqlite"
    summary = {"kind": "transfer", "cells": []}
    with ResultStore(path) as store:
        store.start_run("first", {"kind": "transfer"}, {}, 1)
        store.finish_run("first", summary)
    data = dash.DashboardData(path)
    assert [run.run_id for run in data.runs()] == ["first"]
    with ResultStore(path) as store:
        store.start_run("second", {"kind": "transfer", "n": 2}, {}, 1)
    assert {(run.run_id, run.status) for run in data.runs()} == {
        ("first", "finished"),
        ("second", "running"),
    }
    assert isinstance(data.result("fir"), TransferMatrix)
