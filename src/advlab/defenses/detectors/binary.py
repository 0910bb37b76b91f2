"""A trained adversarial-example detector on the model's features.

:class:`BinaryDetector` (in the spirit of Metzen et al. 2017, "On detecting adversarial
perturbations") reads the model's penultimate-layer features, the input of its last
``nn.Linear``, and trains a small classifier to tell clean images from adversarial ones
crafted with a chosen attack (PGD by default). The model itself is never changed. Its
threshold is set on clean images held out from the detector's training, for a target
false-positive rate, as for :class:`~advlab.defenses.detectors.squeezing.FeatureSqueezingDetector`.
:class:`~advlab.defenses.detectors.aware.DetectorAwarePGD` attacks model and detector together.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.base import Attack
from advlab.attacks.pgd import PGD
from advlab.defenses.detectors.base import Detector
from advlab.errors import AdvlabError, check
from advlab.models.checkpoint import load_weights_into, read_sidecar, save_checkpoint
from advlab.models.classifier import ImageClassifier
from advlab.models.context import frozen_eval
from advlab.models.weights import weights_sha256

ARCHITECTURE = "advlab-binary-detector"


def default_training_attacks(model: ImageClassifier) -> list[Attack]:
    """PGD (20 steps, random start) at three radii, so one detector covers an eps sweep.

    MNIST-scale eps (0.1, 0.2, 0.3) for grayscale models, 2/255, 4/255, 8/255 for color,
    the usual L-inf budgets of each.
    """
    radii = (0.1, 0.2, 0.3) if model.input_shape[0] == 1 else (2 / 255, 4 / 255, 8 / 255)
    return [PGD(eps=eps, steps=20, seed=index) for index, eps in enumerate(radii)]


def feature_layer(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    """The module whose *input* are the features: ``name``, or else the last ``nn.Linear``.

    The last linear layer is the classifier head of every advlab architecture and of
    torchvision's, so its input is the penultimate representation.
    """
    modules = dict(model.named_modules())
    if name is not None:
        check(name in modules, f"model has no module '{name}': pass one of its module names")
        return name, modules[name]
    linears = [(key, module) for key, module in modules.items() if isinstance(module, nn.Linear)]
    check(
        len(linears) > 0,
        "the model has no nn.Linear layer: pass layer='NAME' of the module whose input are "
        "the features",
    )
    return linears[-1]


@contextlib.contextmanager
def captured_input(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the first input of every call of ``module`` while the block runs."""
    seen: list[torch.Tensor] = []

    def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
        seen.append(args[0])

    handle = module.register_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


class DetectorHead(nn.Module):
    """Standardized features, then an MLP with one hidden layer to a single logit.

    ``hidden=0`` makes it a logistic regression. The feature statistics are buffers so
    that they are saved with the weights.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, features: int, hidden: int = 256) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.layers: nn.Module = (
            nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
            if hidden > 0
            else nn.Linear(features, 1)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # In the head's own precision, whatever the model's (a float64 model, say).
        features = features.to(self.mean.dtype)
        return self.layers((features - self.mean) / self.std).squeeze(1)


class BinaryDetector(Detector):
    """Flags inputs whose penultimate-layer features look adversarial to a trained classifier.

    ``score(x)`` is the detector's logit (higher: more likely adversarial). :meth:`fit`
    crafts adversarial examples from clean images, trains the head on clean vs
    adversarial features, and sets the threshold at the ``1 - fpr`` quantile of the
    scores of clean images kept out of that training.
    """

    name = "binary"
    trains = True

    def __init__(
        self,
        model: ImageClassifier,
        attacks: Attack | Sequence[Attack] | None = None,
        fpr: float = 0.05,
        *,
        layer: str | None = None,
        hidden: int = 256,
        epochs: int = 100,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(model, fpr, batch_size)
        check(hidden >= 0, f"hidden must be >= 0 (0: logistic regression), got {hidden}")
        check(epochs >= 1 and lr > 0, "epochs must be >= 1 and lr > 0")
        if attacks is None:
            attacks = default_training_attacks(model)
        self.attacks = [attacks] if isinstance(attacks, Attack) else list(attacks)
        check(len(self.attacks) > 0, "give at least one attack to train the detector on")
        self.layer, self._module = feature_layer(model, layer)
        self.hidden = int(hidden)
        self.epochs = int(epochs)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.seed = int(seed)
        self.head: DetectorHead | None = None
        self.trained_on: dict[str, Any] = {}

    def __repr__(self) -> str:
        names = ", ".join(f"{a.name}(eps={a.eps:g})" for a in self.attacks if a.eps is not None)
        return (
            f"BinaryDetector(layer={self.layer!r}, hidden={self.hidden}, trained on [{names}], "
            f"fpr={self.fpr}, threshold={self.threshold})"
        )

    def config(self) -> dict[str, Any]:
        """Everything that decides the detector (stored beside its results and weights)."""
        return {
            "detector": self.name,
            "layer": self.layer,
            "hidden": self.hidden,
            "epochs": self.epochs,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "fpr": self.fpr,
            "threshold": self.threshold,
            "attacks": [attack.config() for attack in self.attacks],
            **self.trained_on,
        }

    # -- features and scores ----------------------------------------------------------
    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's logits and its features on ``images``, in one differentiable pass."""
        with captured_input(self._module) as seen:
            logits = self.model(images)
        check(
            len(seen) > 0,
            f"layer '{self.layer}' did not run in the model's forward: pass another layer",
        )
        return logits, seen[-1].flatten(1)

    def logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(model logits, detector logit)``; differentiable, for attacks."""
        head = self._fitted_head()
        logits, features = self.features(images)
        return logits, head(features)

    def _score_batch(self, images: torch.Tensor) -> torch.Tensor:
        head = self._fitted_head()
        with frozen_eval(head):
            return head(self.features(images)[1])

    # -- training and threshold -------------------------------------------------------
    def fit(
        self,
        clean_images: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        calibration: float = 0.25,
    ) -> BinaryDetector:
        """Train on ``clean_images`` and their adversarial copies; set the threshold.

        ``labels`` default to the model's own predictions (what an attacker fools). The
        images are split at random: ``1 - calibration`` train the head (image ``i`` is
        attacked by ``attacks[i % len(attacks)]``), the rest only set the threshold, so
        that the false-positive rate is not measured on training images.
        """
        count = clean_images.shape[0]
        check(0 < calibration < 1, f"calibration must be in (0, 1), got {calibration}")
        calibrate_count = int(round(calibration * count))
        check(
            calibrate_count >= 2 and count - calibrate_count >= 2,
            f"fit the detector on more clean images (got {count})",
        )
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(count, generator=generator)
        train, held = order[calibrate_count:], order[:calibrate_count]
        if labels is None:
            labels = self._predictions(clean_images)
        adversarial = self._craft(clean_images[train], labels[train])
        clean_features = self._features(clean_images[train])
        adversarial_features = self._features(adversarial)
        self.head = self._train_head(clean_features, adversarial_features, generator)
        self.trained_on = {
            "train_images": int(train.numel()),
            "calibration_images": int(held.numel()),
        }
        self._set_threshold(self.score(clean_images[held]))
        return self

    # -- saving -----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the head to ``path`` (.safetensors) and its configuration to the .json sidecar."""
        head = self._fitted_head()
        path = Path(path)
        check(path.suffix == ".safetensors", f"save the detector as NAME.safetensors, not {path}")
        metadata = {
            "architecture": ARCHITECTURE,
            "model": getattr(self.model, "name", type(self.model).__name__),
            "model_sha256": weights_sha256(self.model),
            "features": int(head.mean.numel()),
            **self.config(),
        }
        return save_checkpoint(head, path, metadata)

    @classmethod
    def load(cls, path: str | Path, model: ImageClassifier) -> BinaryDetector:
        """A detector saved by :meth:`save`, for the same ``model`` (checked by its weights)."""
        side = read_sidecar(path)
        check(
            side.get("architecture") == ARCHITECTURE,
            f"{path} is not a binary detector (its sidecar says {side.get('architecture')!r})",
        )
        check(
            side.get("model_sha256") == weights_sha256(model),
            f"detector {path} was trained for other weights of model '{side.get('model')}': "
            "load it with the model it was trained for",
        )
        try:
            detector = cls(
                model,
                _attacks_from_config(side.get("attacks") or []) or None,
                side["fpr"],
                layer=side["layer"],
                hidden=side["hidden"],
                epochs=side["epochs"],
                lr=side["lr"],
                weight_decay=side["weight_decay"],
                batch_size=side["batch_size"],
                seed=side["seed"],
            )
        except KeyError as missing:
            raise AdvlabError(
                f"detector sidecar of {path} lacks {missing}: save it again"
            ) from None
        head = DetectorHead(int(side["features"]), detector.hidden)
        load_weights_into(head, path)
        detector.head = head.to(model.device).eval()
        detector.threshold = side.get("threshold")
        detector.trained_on = {
            key: side[key] for key in ("train_images", "calibration_images") if key in side
        }
        return detector

    # -- internals --------------------------------------------------------------------
    def _fitted_head(self) -> DetectorHead:
        check(self.head is not None, "the detector is not trained: call fit(clean_images) first")
        assert self.head is not None
        return self.head

    def _predictions(self, images: torch.Tensor) -> torch.Tensor:
        return self._map_batches(lambda batch: self.model(batch).argmax(1), images)

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        return self._map_batches(lambda batch: self.features(batch)[1], images)

    def _craft(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial copies of ``images``; image ``i`` gets attack ``i % len(attacks)``."""
        adversarial = images.clone()
        for index, attack in enumerate(self.attacks):
            chosen = torch.arange(index, images.shape[0], len(self.attacks))
            for batch, batch_labels, where in self._batches(images[chosen], labels[chosen], chosen):
                adversarial[where.cpu()] = attack(self.model, batch, batch_labels).adversarial.cpu()
        return adversarial

    def _train_head(
        self, clean: torch.Tensor, adversarial: torch.Tensor, generator: torch.Generator
    ) -> DetectorHead:
        features = torch.cat([clean, adversarial])
        targets = torch.cat([torch.zeros(clean.shape[0]), torch.ones(adversarial.shape[0])])
        with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG untouched
            torch.manual_seed(self.seed)
            head = DetectorHead(features.shape[1], self.hidden)
        head.mean.copy_(features.mean(0))
        head.std.copy_(features.std(0).clamp_min(1e-6))  # dead ReLU units have std 0
        optimizer = torch.optim.Adam(head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        head.train()
        with _one_thread():
            for _ in range(self.epochs):
                order = torch.randperm(features.shape[0], generator=generator)
                for start in range(0, features.shape[0], 128):
                    index = order[start : start + 128]
                    optimizer.zero_grad()
                    loss = F.binary_cross_entropy_with_logits(head(features[index]), targets[index])
                    loss.backward()
                    optimizer.step()
        return head.eval().to(self.model.device)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run on one CPU thread: for a tiny MLP, thread hand-offs cost more than the math
    (measured 0.65 s with one thread, 30 s with two on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _attacks_from_config(configs: Sequence[dict[str, Any]]) -> list[Attack]:
    """Rebuild the training attacks from their stored ``config()`` (for the record only)."""
    from advlab.attacks import get_attack

    attacks = []
    for config in configs:
        values = dict(config)
        name = values.pop("attack", None)
        check(isinstance(name, str), f"a stored training attack has no name: {json.dumps(config)}")
        try:
            attacks.append(get_attack(str(name))(**values))
        except TypeError as error:
            raise AdvlabError(f"cannot rebuild training attack {name}: {error}") from None
    return attacks
