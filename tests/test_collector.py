"""gateway.shell.collector: what start-up loaded is frozen, what requests allocate is still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway.shell.collector import freeze_loaded


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def frozen() -> Iterator[int]:
    try:
        yield freeze_loaded()
    finally:
        gc.unfreeze()


def test_start_up_objects_are_frozen_and_later_cycles_still_collected(frozen: int) -> None:
    assert frozen > 0 and gc.get_freeze_count() > 0
    first, second = Node(), Node()
    first.other, second.other = second, first  # a cycle: only the collector frees it
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is None, "a cycle made after the freeze must still be collected"
    assert gc.get_freeze_count() <= frozen, "nothing made after the freeze joins the frozen generation"
