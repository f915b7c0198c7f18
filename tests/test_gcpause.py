import gc
import weakref

import pytest

from crm_ingest.gcpause import collector_paused


@pytest.fixture(autouse=True)
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_is_paused_inside_and_back_on_after():
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_inside_still_switches_it_back_on():
    with pytest.raises(ValueError):
        with collector_paused():
            raise ValueError("a chunk failed")
    assert gc.isenabled()


def test_a_nested_pause_leaves_switching_back_to_the_outer_one():
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block's work is still running
    assert gc.isenabled()


def test_a_collector_switched_off_by_the_caller_stays_off():
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_cyclic_garbage_waits_while_paused_and_the_collector_takes_it_on_its_own_after():
    class Node:
        pass

    def churn():  # far more new containers than the youngest generation's threshold
        return [[] for _ in range(gc.get_threshold()[0] * 20)]

    with collector_paused():
        node = Node()
        node.self = node  # a cycle: reference counting alone cannot free it
        ref = weakref.ref(node)
        del node
        churn()
        assert ref() is not None  # no collection ran inside the block
    churn()
    assert ref() is None  # collected by the collector's own pace, no gc.collect() called
