"""``advlab demo``: the offline demo, an evaluation of the bundled MNIST CNN."""

from __future__ import annotations

from advlab.workflows.base import AttackChoice
from advlab.workflows.config import EvaluateConfig
from advlab.workflows.evaluate import EvaluationOutput, run_evaluation

# Sized to run in about a minute on two CPU cores: 10-step PGD/MIM, and DeepFool over the
# three strongest runner-up classes (the usual choice; all ten barely change the result).
DEMO_ATTACKS = ["fgsm", "pgd:steps=10", "mim:steps=10", "deepfool:steps=50,num_candidates=4"]
DEMO_EPSILONS = [0.05, 0.1, 0.2, 0.3]


def demo_config(out: str = "advlab-demo", n: int = 300, store: str | None = None) -> EvaluateConfig:
    """The offline demo: the bundled MNIST CNN on 300 held-out bundled images."""
    return EvaluateConfig(
        model="mnist-cnn",
        dataset="mnist-demo",
        n=n,
        seed=0,
        attacks=[AttackChoice.parse(text) for text in DEMO_ATTACKS],
        epsilons=DEMO_EPSILONS,
        batch_size=300,
        device="cpu",
        out=out,
        store=store,
    )


def run_demo(
    out: str = "advlab-demo",
    n: int = 300,
    store: str | None = None,
    *,
    progress: bool = True,
    force: bool = False,
) -> EvaluationOutput:
    """Run the demo; its ``config.yaml`` repeats it with ``advlab evaluate --config``."""
    return run_evaluation(demo_config(out, n, store), progress=progress, force=force)
