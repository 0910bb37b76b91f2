"""``advlab dashboard``: a Streamlit app over the results store, and a playground.

:mod:`~advlab.dashboard.app` is the file ``streamlit run`` starts; one module per page
lives in :mod:`~advlab.dashboard.views`; :mod:`~advlab.dashboard.data` reads the store
as typed results, :mod:`~advlab.dashboard.uploads` checks what users upload and
:mod:`~advlab.dashboard.lab` does the playground's work. Streamlit is imported only by
the app and the views (the ``dashboard`` extra).
"""

from pathlib import Path

APP_FILE = Path(__file__).with_name("app.py")

__all__ = ["APP_FILE"]
