"""Examples: page through every image of an evaluation, one attack and eps at a time.

The per-image rows come from the store; the pictures of a page are crafted again on
request (the store keeps only the first few), with a progress bar and a Stop button:
clicking any widget while it runs stops it (Streamlit reruns the page).
"""

from __future__ import annotations

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import streamlit as st
import torch

from advlab.attacks import get_attack
from advlab.dashboard.data import DashboardData, StoredRun
from advlab.dashboard.lab import to_pil
from advlab.dashboard.views.common import pick_unit, run_page
from advlab.data import load_dataset
from advlab.errors import AdvlabError
from advlab.models import load_model
from advlab.results import Evaluation

PAGE_SIZE = 24


def render(data: DashboardData) -> None:
    run_page(data, "Examples", "evaluate", "examples_run", Evaluation, show_examples)


def show_examples(data: DashboardData, run: StoredRun, evaluation: Evaluation) -> None:
    """One evaluation run's images, a page at a time."""
    key, eps = pick_unit([(e.key, e.eps) for e in evaluation.results], "examples_unit")
    pages = max(1, -(-evaluation.n // PAGE_SIZE))
    page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key="examples_page"))
    start, stop = (page - 1) * PAGE_SIZE, min(evaluation.n, page * PAGE_SIZE)
    clean = data.clean(run.run_id, evaluation.n)
    rows = data.outcomes(run.run_id, key, eps, evaluation.n)
    names = evaluation.class_names

    def name(index: int) -> str:
        return names[index] if 0 <= index < len(names) else str(index)

    table = pd.DataFrame({
        "image": np.arange(start, stop),
        "label": [name(int(i)) for i in clean.labels[start:stop]],
        "clean": [name(int(i)) for i in clean.pred[start:stop]],
        "adversarial": [name(int(i)) for i in rows.adv_pred[start:stop]],
        "fooled": rows.success[start:stop],
        "Linf": rows.linf[start:stop], "L2": rows.l2[start:stop],
        "queries": rows.queries[start:stop],
    })  # fmt: skip
    st.dataframe(table, hide_index=True)
    state_key = f"crafted:{run.run_id}:{key}:{eps}:{page}"
    if st.button("Show this page's images", key="examples_craft"):
        st.session_state[state_key] = craft(evaluation, key, eps, start, stop)
    if state_key in st.session_state:
        clean_images, adversarial, predicted = st.session_state[state_key]
        st.caption("Crafted again with the run's attack settings (a random start may differ "
                   "from the stored run's); captions give the model's prediction.")  # fmt: skip
        for offset in range(0, stop - start, 8):
            columns = st.columns(8)
            for j, column in enumerate(columns):
                i = offset + j
                if i >= stop - start:
                    break
                column.image(to_pil(clean_images[i]), caption=f"#{start + i} clean", width=72)
                column.image(to_pil(adversarial[i]), caption=f"adv: {name(int(predicted[i]))}",
                             width=72)  # fmt: skip


def craft(
    evaluation: Evaluation, key: str, eps: float, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The clean and adversarial images ``start:stop`` of the run, crafted again, and the
    model's predictions of the adversarial ones."""
    entry = evaluation.result(key, eps)
    try:
        model = load_model(evaluation.model)
    except AdvlabError as error:
        raise AdvlabError(f"cannot load the run's model to draw its images: {error}") from None
    dataset = load_dataset(evaluation.dataset, evaluation.split, evaluation.n,
                           seed=evaluation.seed)  # fmt: skip
    config = {k: v for k, v in entry.config.items() if k != "attack"}
    attack = get_attack(entry.attack)(**config)
    images = dataset.pixels[start:stop].float() / 255.0
    labels = dataset.labels[start:stop]
    bar = st.progress(0.0, text="crafting… (click Stop to cancel)")
    stopper = st.empty()
    stopper.button("Stop", key="examples_stop")  # any click reruns the page: this run stops
    out = []
    for i in range(images.shape[0]):
        result = attack(model, images[i : i + 1], torch.as_tensor(labels[i : i + 1]))
        out.append(result.adversarial.detach().cpu())
        bar.progress((i + 1) / images.shape[0], text=f"crafted {i + 1} of {images.shape[0]}")
    bar.empty()
    stopper.empty()
    adversarial = torch.cat(out)
    with torch.no_grad():
        predicted = model(adversarial).argmax(dim=1).numpy()
    return images.numpy(), adversarial.numpy(), predicted
