"""tests/slow_first.py: the order xdist hands tests out in (scripts/test.sh runs -n 2 --maxschedchunk 1)."""

from __future__ import annotations

import slow_first  # tests/ is on the path (tests/conftest.py)


class Item:
    def __init__(self, nodeid: str):
        self.nodeid = nodeid

    def __repr__(self):
        return self.nodeid


def test_long_tests_first_longest_first_each_followed_by_a_unit_test(monkeypatch):
    monkeypatch.setattr(slow_first, "ESTIMATES", {"tests/integration/a.py::test_x": 10,
                                                  "tests/integration/b.py": 50,
                                                  "tests/integration/b.py::test_quick": 1})
    ids = ["tests/integration/a.py::test_x[1]", "tests/integration/a.py::test_y",
           "tests/integration/b.py::test_quick", "tests/integration/b.py::test_slow",
           "tests/unit/u.py::test_1", "tests/unit/u.py::test_2", "tests/unit/u.py::test_3",
           "tests/unit/u.py::test_4"]
    out = [item.nodeid for item in slow_first.slow_first([Item(i) for i in ids])]
    assert out == ["tests/integration/b.py::test_slow", "tests/unit/u.py::test_1",   # 50 s (file prefix)
                   "tests/integration/a.py::test_x[1]", "tests/unit/u.py::test_2",   # 10 s
                   "tests/integration/b.py::test_quick", "tests/unit/u.py::test_3",  # longest prefix wins: 1 s
                   "tests/integration/a.py::test_y", "tests/unit/u.py::test_4"]      # the rest, in order


def test_nothing_lost_or_repeated_without_enough_unit_tests():
    ids = [f"tests/integration/test_filter_differential.py::test_{n}" for n in
           ("aws_random", "rsync_over_ssh", "rsync_random", "aws_exact_flag_is_honest")] + ["tests/unit/u.py::t"]
    out = slow_first.slow_first([Item(i) for i in ids])
    assert sorted(item.nodeid for item in out) == sorted(ids)
    assert [item.nodeid.rsplit("::", 1)[1] for item in out] == [
        "test_aws_random", "t", "test_rsync_over_ssh", "test_rsync_random", "test_aws_exact_flag_is_honest"]
