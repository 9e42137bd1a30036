"""A bounded memo that a caller can also tell answers to.

`functools.lru_cache` only learns what its function returns. The applier and the planner also
know some answers in advance: the data and the document starts of a text the applier has just
written and checked, or a plan a worker has just made. `Memo` keeps the answers for the keys
used last and forgets the least recently used ones first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    """The answers for the ``size`` keys used last (not thread-safe: callers that share one
    between threads hold their own lock)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._answers: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, default: V | None = None) -> V | None:
        """The answer for ``key`` (now the most recently used), else ``default``."""
        try:
            self._answers.move_to_end(key)
        except KeyError:
            return default
        return self._answers[key]

    def put(self, key: K, answer: V) -> V:
        """Remember ``answer`` for ``key``, forgetting the least recently used beyond the size;
        returns the answer."""
        self._answers[key] = answer
        self._answers.move_to_end(key)
        if len(self._answers) > self.size:
            self._answers.popitem(last=False)
        return answer

    def __contains__(self, key: object) -> bool:
        return key in self._answers

    def __len__(self) -> int:
        return len(self._answers)

    def clear(self) -> None:
        self._answers.clear()
