"""`fixers.memo.Memo`: the answers for the keys used last, told or learnt."""

from __future__ import annotations

from fixers.memo import Memo


def test_a_memo_forgets_the_least_recently_used_key_first() -> None:
    memo: Memo[str, int | None] = Memo(2)
    assert memo.put("a", 1) == 1
    memo.put("b", None)  # an answer of None is an answer: asked with `in`
    assert memo.get("a") == 1  # "a" is now the most recently used
    memo.put("c", 3)
    assert "b" not in memo and "a" in memo and "c" in memo
    assert len(memo) == 2
    assert memo.get("b", -1) == -1
    memo.put("a", 4)  # told again: the new answer, and used last
    memo.put("d", 5)
    assert memo.get("a") == 4 and "c" not in memo
    memo.clear()
    assert len(memo) == 0 and memo.get("a") is None
