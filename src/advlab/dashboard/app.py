"""The dashboard's entry point: ``streamlit run app.py -- --store PATH``."""

from __future__ import annotations

import argparse
import sys

import streamlit as st

from advlab.dashboard.data import DashboardData
from advlab.dashboard.views import attacks, defenses, examples, playground, runs, transfer
from advlab.errors import AdvlabError
from advlab.evaluation.store import default_store_path

PAGES = {
    "Runs": runs.render,
    "Attack analytics": attacks.render,
    "Examples": examples.render,
    "Defenses": defenses.render,
    "Transferability": transfer.render,
    "Playground": playground.render,
}


def store_path(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="advlab dashboard")
    parser.add_argument("--store", default=None)
    args, _ = parser.parse_known_args(argv)
    return str(args.store or default_store_path())


@st.cache_resource
def open_store(path: str) -> DashboardData:
    """One reader per store for the whole server (it caches what it read)."""
    return DashboardData(path)


def main() -> None:
    st.set_page_config(page_title="advlab dashboard", layout="wide")
    data = open_store(store_path(sys.argv[1:]))
    st.sidebar.title("advlab")
    page = str(st.sidebar.radio("Page", list(PAGES), key="page"))
    st.sidebar.caption(f"store: {data.path}")
    try:
        PAGES[page](data)
    except AdvlabError as error:
        st.error(str(error))


main()
