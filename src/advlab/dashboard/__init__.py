"""``advlab dashboard``: a Streamlit app over the results store, and a playground.

:mod:`~advlab.dashboard.app` is the file ``streamlit run`` starts; one module per page
lives in :mod:`~advlab.dashboard.views`; :mod:`~advlab.dashboard.data` reads the store
as typed results, :mod:`~advlab.dashboard.uploads` checks what users upload,
:mod:`~advlab.dashboard.lab` does the playground's work and :mod:`~advlab.dashboard.launch`
starts the app. Streamlit is imported only by the app, the views and the charts (the
``dashboard`` extra).
"""

from advlab.dashboard.launch import APP_FILE, running_dashboard, streamlit_command

__all__ = ["APP_FILE", "running_dashboard", "streamlit_command"]
