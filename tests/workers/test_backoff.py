"""retry_delay: the one backoff policy, a pure function."""
from __future__ import annotations

import pytest

from crm_ingest.workers.backoff import retry_delay


@pytest.mark.parametrize("attempts, expected", [(1, 10.0), (2, 20.0), (3, 40.0), (4, 80.0), (5, 160.0)])
def test_delay_starts_at_base_and_doubles_with_each_failure(attempts, expected):
    # Given a 10 s base and a cap far away
    # When the n-th attempt has failed
    # Then the wait is base * 2**(n-1)
    assert retry_delay(attempts, base=10.0, cap=10_000.0) == expected


@pytest.mark.parametrize("attempts", [7, 8, 30, 33, 1_000, 10**9])
def test_delay_never_exceeds_the_cap(attempts):
    # Given many failures
    # When the delay is computed
    # Then it is the cap, without overflowing for huge attempt counts
    assert retry_delay(attempts, base=10.0, cap=600.0) == 600.0


def test_delay_just_below_the_cap_is_not_capped():
    assert retry_delay(6, base=10.0, cap=600.0) == 320.0


def test_cap_below_base_wins_from_the_first_failure():
    assert retry_delay(1, base=10.0, cap=5.0) == 5.0


@pytest.mark.parametrize("attempts", [0, -1, -100])
def test_no_failures_means_no_delay(attempts):
    assert retry_delay(attempts, base=10.0, cap=600.0) == 0.0


def test_delays_never_decrease_as_attempts_grow():
    delays = [retry_delay(n, base=0.2, cap=1.0) for n in range(0, 50)]
    assert delays == sorted(delays)
    assert delays[:5] == [0.0, 0.2, 0.4, 0.8, 1.0]
