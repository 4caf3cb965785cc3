"""Longest tests first, so that the two xdist workers finish together (issue 14 point 6).

The suite's wall time on 2 workers is set by its few long tests (real-tool differentials, the
benchmark smoke run, whole-DAG Snakemake runs): one of them started near the end keeps a worker
busy for minutes after the other has run out of tests.  Under xdist (scripts/test.sh runs
``-n 2 --maxschedchunk 1``, so each worker holds only the test it runs and the next one) the
collection hook in tests/conftest.py reorders the tests: the known long ones first, longest
first, each followed by one short unit test.  The short one is what a worker has queued while
it runs a long test, so the next long test goes to whichever worker frees up first instead of
waiting behind another long one.  Everything else keeps pytest's order (module fixtures stay
together).  Nothing is skipped or changed: only the order.

``ESTIMATES`` are seconds from ``--durations`` of full runs (2 workers, loaded 2-core machine);
they only rank tests, so stale numbers cost time, never correctness.  scripts/test.sh prints the
25 slowest tests of every run (``--durations=25``): update the table from there.
"""

from __future__ import annotations

ESTIMATES: dict[str, float] = {
    # node-id prefix (a whole parametrized test, or a file) -> seconds per matching test
    "tests/integration/test_s3_engine.py::test_rclone_random_lists_up_and_down": 210,
    "tests/integration/test_benchmarks_smoke.py::test_quick_benchmark_runs_every_figure": 200,
    "tests/integration/test_filter_differential.py::test_aws_random": 180,
    "tests/integration/test_workflow.py::test_reruns_follow_meaning": 90,
    "tests/integration/test_gempyor_dag.py::test_blocking_simulate_names_the_run_and_snapshot_is_that_run": 82,
    "tests/integration/test_filter_differential.py::test_rsync_over_ssh": 52,
    "tests/integration/test_filter_differential.py::test_aws_worked_cases_dryrun_and_real": 85,
    "tests/integration/test_benchmarks_smoke.py::test_quick_s3_engine_benchmark_runs_every_figure": 45,
    "tests/integration/test_gempyor_dag.py": 40,
    "tests/integration/test_workflow_slurm.py::test_campaign_under_the_slurm_profile_as_written": 52,
    "tests/integration/test_workflow.py::test_campaign_of_three_runs_targets_noop_and_added_run": 77,
    "tests/unit/test_s3_runs.py::test_large_explicit_selection_is_split_and_exact": 33,
    "tests/integration/test_gempyor_calibrate.py": 30,
    "tests/integration/test_gempyor_slurm_profile.py": 30,
    "tests/integration/test_gempyor_install_order.py": 30,
    "tests/unit/test_filters.py::test_exact_translations_agree_with_evaluator": 27,
    "tests/integration/test_workflow_slurm.py::test_unreachable_scheduler_fails_loudly_in_bounded_time": 23,
    "tests/integration/test_filter_differential.py::test_rsync_random": 22,
    "tests/integration/test_reliability_secrets.py::test_receipts_and_logs_never_contain_secrets": 22,
    "tests/integration/test_s3_engine.py::test_downloads_keep_the_s3_time_and_resync_across_engines_is_a_no_op": 21,
    "tests/integration/test_s3_engine.py::test_same_files_and_output_as_aws": 17,
    "tests/integration/test_reliability_secrets.py::test_rsh_secrets_never_shown": 17,
    "tests/integration/test_reliability_delete.py::test_nothing_is_deleted_unless_asked": 15,
    "tests/integration/test_s3sync_protocol.py::test_split_explicit_selection_moves_exactly_the_selection": 18,
    "tests/integration/test_s3sync_protocol.py::test_trailing_slash_table": 17,
    "tests/integration/test_git_interrupt.py::test_interrupted_pull_leaves_the_repository_as_it_was[ff-3000-files": 15,
    "tests/integration/test_git_interrupt.py::test_killed_pull_is_rolled_back_and_finished_by_the_rerun[ff-3000": 15,
    "tests/integration/test_gempyor_slurm_wait.py": 12,
    "tests/integration/test_workflow.py": 10,
}


def estimate(nodeid: str) -> float | None:
    """Seconds of the longest matching prefix, or None for a test not in the table."""
    best = None
    for prefix, seconds in ESTIMATES.items():
        if nodeid.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, seconds)
    return best[1] if best else None


def slow_first(items: list) -> list:
    """The known long tests (longest first), each followed by one short unit test; then the rest
    in their original order."""
    timed = [(estimate(item.nodeid), n, item) for n, item in enumerate(items)]
    long = [item for seconds, _n, item in sorted((t for t in timed if t[0] is not None),
                                                 key=lambda t: (-t[0], t[1]))]
    rest = [item for seconds, _n, item in timed if seconds is None]
    fillers = [item for item in rest if item.nodeid.startswith("tests/unit/")][:len(long)]
    chosen = {id(item) for item in fillers}
    out = []
    for n, item in enumerate(long):
        out.append(item)
        if n < len(fillers):
            out.append(fillers[n])
    out.extend(item for item in rest if id(item) not in chosen)
    assert len(out) == len(items)
    return out
