"""Playground: one model, one image, one attack with sliders; clean | adversarial |
amplified perturbation with their top-5, recomputed on every change."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from advlab.dashboard import lab
from advlab.dashboard.data import DashboardData
from advlab.dashboard.uploads import UploadError, check_image, image_to_array, load_model_upload
from advlab.data import DATASETS, load_dataset
from advlab.errors import AdvlabError
from advlab.models import load_model, registered_models

DEFAULT_MODEL = "mnist-cnn"
DEFAULT_DATA = "mnist-demo"


@st.cache_resource(show_spinner="loading the model…", max_entries=4)
def _registry_model(name: str) -> Any:
    return load_model(name, device="cpu")


@st.cache_resource(show_spinner="loading the uploaded model…", max_entries=2)
def _uploaded_model(digest: str, _data: bytes, name: str, arch: str | None, _side: Any) -> Any:
    return load_model_upload(_data, name, arch, _side)


@st.cache_resource(show_spinner="loading the data set…", max_entries=2)
def _dataset(name: str) -> Any:
    return load_dataset(name, "test")


def render(data: DashboardData) -> None:
    del data  # the playground works on models, not on stored runs
    st.header("Playground")
    try:
        model = pick_model()
        if model is None:
            return
        image, label = pick_image(model)
        if image is None:
            return
        settings = pick_attack(lab.class_names(model, image))
        with st.spinner("attacking…"):
            outcome = lab.run_playground(model, image, label, **settings)
    except (UploadError, AdvlabError) as error:
        st.error(str(error))
        return
    except Exception as error:  # an untrusted model may fail in any way: say so, stay up
        st.error(f"the attack failed: {type(error).__name__}: {error}")
        return
    show(outcome)


def pick_model() -> Any:
    source = st.radio("Model", ["registry", "upload"], horizontal=True, key="pg_model_source")
    if source == "registry":
        names = [entry.name for entry in registered_models()]
        index = names.index(DEFAULT_MODEL) if DEFAULT_MODEL in names else 0
        return _registry_model(str(st.selectbox("Registry model", names, index, key="pg_model")))
    upload = st.file_uploader("safetensors or TorchScript file", key="pg_model_file",
                              type=["safetensors", "pt", "pth", "ts"])  # fmt: skip
    st.caption("TorchScript runs the code it holds: upload only files you trust.")
    if upload is None:
        st.info("Upload a model file, or pick one from the registry.")
        return None
    sidecar, arch = None, None
    if upload.name.endswith(".safetensors"):
        side = st.file_uploader("its JSON sidecar (or pick an architecture)", type=["json"],
                                key="pg_model_sidecar")  # fmt: skip
        names = [entry.name for entry in registered_models()]
        arch = None if side else st.selectbox("Architecture", names, key="pg_model_arch")
        sidecar = side.getvalue() if side else None
    content = upload.getvalue()
    digest = hashlib.sha256(content + (sidecar or b"")).hexdigest()
    return _uploaded_model(digest, content, upload.name, arch, sidecar)


def pick_image(model: Any) -> tuple[np.ndarray | None, int]:
    shape = tuple(model.input_shape)
    source = st.radio("Image", ["data set", "upload"], horizontal=True, key="pg_image_source")
    if source == "data set":
        names = list(DATASETS)
        left, right = st.columns(2)
        name = str(left.selectbox("Data set", names, names.index(DEFAULT_DATA)
                                  if DEFAULT_DATA in names else 0, key="pg_data"))  # fmt: skip
        dataset = _dataset(name)
        if all(shape) and dataset.image_shape != shape:
            raise AdvlabError(f"data set '{name}' has images of shape {dataset.image_shape}, "
                              f"the model reads {shape}: pick a matching pair")  # fmt: skip
        index = int(right.number_input(f"Image index (0–{len(dataset) - 1})", 0,
                                       len(dataset) - 1, 0, key="pg_index"))  # fmt: skip
        image = dataset.pixels[index].float().numpy() / 255.0
        return image, int(dataset.labels[index])
    upload = st.file_uploader("PNG or JPEG image", type=["png", "jpg", "jpeg"], key="pg_image_file")
    if upload is None:
        st.info("Upload a PNG or JPEG image, or pick one from a data set.")
        return None, 0
    picture = check_image(upload.getvalue(), upload.name)
    if not all(shape):  # a TorchScript model does not say: the image as it is
        shape = (1 if picture.mode == "L" else 3, picture.height, picture.width)
    image = image_to_array(picture, shape)
    label = lab.predict(model, image)
    st.caption(f"No label for an uploaded image: the model's own prediction ({label}) is used.")
    return image, label


def pick_attack(classes: list[str]) -> dict[str, Any]:
    names = lab.attack_names()
    left, middle, right = st.columns(3)
    attack = str(left.selectbox("Attack", names, names.index("fgsm") if "fgsm" in names else 0,
                                key="pg_attack"))  # fmt: skip
    norm = str(middle.selectbox("Norm", ["linf", "l2"], key="pg_norm"))
    top = 0.5 if norm == "linf" else 10.0
    step = 1 / 255 if norm == "linf" else 0.05
    eps = left.slider("eps (pixel units)", 0.0, top, 8 / 255 if norm == "linf" else 1.0, step,
                      format="%.4f", key=f"pg_eps_{norm}")  # fmt: skip
    left.caption(f"eps = {eps:.4f} = {eps * 255:.1f}/255")
    has_steps = "steps" in lab.attack_options(attack)
    steps = middle.slider("steps", 1, 100, 10, key="pg_steps", disabled=not has_steps)
    target = str(right.selectbox("Target class", ["untargeted", *classes], key="pg_target"))
    return {"attack": attack, "eps": float(eps), "norm": norm,
            "steps": steps if has_steps else None,
            "target": None if target == "untargeted" else classes.index(target),
            "class_names": classes}  # fmt: skip


def show(outcome: lab.Outcome) -> None:
    clean_name, clean_p = outcome.clean_top[0]
    adv_name, adv_p = outcome.adv_top[0]
    verdict = "fooled" if outcome.success else "not fooled"
    st.markdown(f"**Clean prediction: {clean_name} ({clean_p:.1%})** · "
                f"**Adversarial prediction: {adv_name} ({adv_p:.1%})** · {verdict} · "
                f"Linf {outcome.linf:.4f}, L2 {outcome.l2:.3f}")  # fmt: skip
    columns = st.columns(3)
    panels = [("clean", outcome.clean, outcome.clean_top),
              ("adversarial", outcome.adversarial, outcome.adv_top),
              ("perturbation (amplified)", outcome.amplified, None)]  # fmt: skip
    for column, (title, array, top) in zip(columns, panels, strict=True):
        column.image(lab.to_pil(array), caption=title, width=220)
        if top is not None:
            column.dataframe(pd.DataFrame(top, columns=["class", "probability"]),
                             hide_index=True)  # fmt: skip
    left, right = st.columns(2)
    left.download_button("Download adversarial PNG", lab.png_bytes(outcome.adversarial),
                         "adversarial.png", "image/png", key="pg_dl_adv")  # fmt: skip
    right.download_button("Download figure", lab.figure_png(outcome), "playground.png",
                          "image/png", key="pg_dl_fig")  # fmt: skip
