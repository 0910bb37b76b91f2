"""Jupyter widgets (``pip install advlab[notebook]``): :func:`explorer`, an eps slider and an
attack picker over a model and a few images."""

from advlab.widgets.explorer import Explorer, attack_example, explorer

__all__ = ["Explorer", "attack_example", "explorer"]
