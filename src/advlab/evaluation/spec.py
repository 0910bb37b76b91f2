"""One attack of a sweep, and the identity of a whole evaluation run.

A run is identified by a hash of everything that decides its numbers (model weights,
data, attacks, epsilons, batch size, seed), so the same configuration finds its stored
results again and resumes instead of starting over.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from advlab.attacks import Attack, get_attack
from advlab.attacks.norms import Norm
from advlab.data import ImageDataset
from advlab.errors import AdvlabError, check
from advlab.models.weights import weights_sha256
from advlab.results import AttackRecord

#: Bumped when the meaning of stored rows changes, so old runs are not resumed by mistake.
IDENTITY_VERSION = 1
_RESERVED = ("eps", "norm", "seed")


@dataclass(frozen=True)
class AttackSpec:
    """An attack of the sweep; ``eps`` is filled in per sweep point.

    ``params`` are the other constructor arguments, e.g. ``{"steps": 20, "restarts": 2}``;
    they must be plain JSON values because they are part of the run's identity.
    """

    name: str
    norm: Norm = "linf"
    params: dict[str, Any] = field(default_factory=dict)

    def build(self, eps: float, seed: int | None) -> Attack:
        cls = get_attack(self.name)
        clash = [key for key in _RESERVED if key in self.params]
        check(not clash, f"attack '{self.name}' params set {', '.join(clash)}: pass eps, norm and "
              "seed through the sweep, not params")  # fmt: skip
        try:
            return cls(eps=eps, norm=self.norm, seed=seed, **self.params)
        except TypeError as error:
            raise AdvlabError(f"bad option for attack '{self.name}': {error}") from None

    @property
    def key(self) -> str:
        """A readable unique name: ``pgd-linf`` or ``pgd-linf[restarts=2,steps=20]``."""
        base = f"{get_attack(self.name).name}-{self.norm}"
        if not self.params:
            return base
        options = ",".join(f"{k}={json.dumps(self.params[k])}" for k in sorted(self.params))
        return f"{base}[{options}]"

    def to_dict(self) -> AttackRecord:
        return {"name": get_attack(self.name).name, "norm": self.norm, "params": dict(self.params)}


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text (and hashes)."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise AdvlabError(
            f"the evaluation configuration holds a value that is not plain JSON ({error}): "
            "give attack params as numbers, strings, booleans or lists"
        ) from None


def data_sha256(dataset: ImageDataset) -> str:
    """sha256 of the pixels and labels: an edited image folder must not resume an old run."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(dataset.pixels.numpy()).tobytes())
    digest.update(np.ascontiguousarray(dataset.labels.numpy().astype(np.int64)).tobytes())
    return digest.hexdigest()


def data_identity(model: nn.Module, dataset: ImageDataset) -> dict[str, Any]:
    """The part of a run's identity that names its model and its data (by content)."""
    return {
        "version": IDENTITY_VERSION,
        "model": str(getattr(model, "name", type(model).__name__)),
        "weights_sha256": weights_sha256(model),
        "dataset": dataset.name,
        "split": dataset.split,
        "n": len(dataset),
        "data_sha256": data_sha256(dataset),
    }


def run_identity(
    model: nn.Module,
    dataset: ImageDataset,
    attacks: list[AttackSpec],
    epsilons: list[float],
    batch_size: int,
    seed: int,
) -> dict[str, Any]:
    """Everything that decides the numbers of a run, as plain JSON data."""
    indices = np.ascontiguousarray(np.asarray(dataset.indices, dtype=np.int64))
    return {
        **data_identity(model, dataset),
        "indices_sha256": hashlib.sha256(indices.tobytes()).hexdigest(),
        "seed": int(seed),
        "attacks": [spec.to_dict() for spec in attacks],
        "epsilons": [float(eps) for eps in epsilons],
        "batch_size": int(batch_size),
    }


def run_id_of(identity: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]


def derive_seed(seed: int, attack_key: str, eps: float, offset: int) -> int:
    """The seed of one (attack, eps, batch) unit: independent of which units ran before.

    A resumed run therefore draws exactly the random starts an uninterrupted one would.
    """
    text = canonical_json([int(seed), attack_key, float(eps).hex(), int(offset)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") & (2**63 - 1)


def check_sweep(attacks: list[AttackSpec], epsilons: list[float], batch_size: int) -> None:
    """One-line errors for a sweep that cannot run, before any work starts."""
    check(len(attacks) > 0, "give at least one attack to evaluate")
    check(len(epsilons) > 0, "give at least one eps to evaluate")
    check(batch_size >= 1, f"batch_size must be >= 1, got {batch_size}")
    for eps in epsilons:
        check(math.isfinite(eps) and eps >= 0, f"eps must be a finite number >= 0, got {eps}")
    check(len(set(epsilons)) == len(epsilons), "the epsilons repeat a value: give each eps once")
    keys = [spec.key for spec in attacks]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    check(not duplicates, f"attack {', '.join(duplicates)} is listed twice: give each attack once")
    for spec in attacks:
        canonical_json(spec.params)
        for eps in epsilons:
            spec.build(eps, 0)  # a bad parameter fails now, not after an hour of work
