"""The processes of a distributed run (``torchrun``), as the evaluation sees them.

An evaluation cuts its work into units whose results depend only on the unit (its
images and its seed, derived from the run seed and the unit's name), so the units can
be dealt out to the ranks in rounds without changing a single number: in each round
every rank computes one unit and rank 0 gathers the results and writes them to the
one store. Rank 0 alone opens the store; what it knows (the units already done, the
clean pass) it broadcasts. One process (no process group) is the world of size 1.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch.distributed as dist

_T = TypeVar("_T")


@dataclass(frozen=True)
class Ranks:
    """This process's ``rank`` among ``world`` processes (0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> Ranks:
        """The ranks of the initialized default process group, else a world of one."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def main(self) -> bool:
        """Rank 0: the process that owns the store and writes the results."""
        return self.rank == 0

    def broadcast(self, value: _T) -> _T:
        """Rank 0's ``value``, on every rank."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: _T) -> list[_T]:
        """Every rank's ``value`` in rank order on rank 0; an empty list elsewhere."""
        if self.world == 1:
            return [value]
        out: list[Any] | None = [None] * self.world if self.main else None
        dist.gather_object(value, out, dst=0)
        return list(out or [])

    def rounds(self, items: Sequence[_T]) -> Iterator[_T | None]:
        """This rank's item of each round of ``world`` items (None once they run out).

        Every rank goes through the same number of rounds, so the collective calls of a
        round (:meth:`gather`) match up.
        """
        for start in range(0, len(items), self.world):
            chunk = items[start : start + self.world]
            yield chunk[self.rank] if self.rank < len(chunk) else None
