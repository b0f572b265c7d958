import time

from xares_hf import profiling


def test_phases_are_exclusive_and_add_up():
    profiling.reset()
    start = time.perf_counter()
    with profiling.phase("outer"):
        time.sleep(0.05)
        with profiling.phase("inner"):
            time.sleep(0.05)
        for _ in profiling.timed_iter("produce", (time.sleep(0.01) or i for i in range(3))):
            pass
    wall = time.perf_counter() - start
    totals = profiling.totals()
    assert 0.04 <= totals["inner"] < 0.09
    assert 0.04 <= totals["outer"] < 0.09  # its children's time is not counted twice
    assert totals["produce"] >= 0.025
    assert abs(sum(totals.values()) - wall) < 0.01
    profiling.reset()
    assert profiling.totals() == {}
