"""`benchmarks.cpu_profile` reads `perf report` text into shares and groups threads (#17)."""

from __future__ import annotations

from benchmarks.cpu_profile import PYTHON_THREADS, shares, table, thread_groups

# As `perf report --sort comm --stdio` prints it (a drain of the 1M backlog, 2026-12-03): names padded to 15.
_COUNTS = [
    ("50.89", "lakemail"),
    ("14.78", "async-executor-"),
    ("10.98", "tokio-rt-worker"),
    (" 9.71", "polars-0"),
    (" 9.19", "polars-1"),
    (" 4.45", "jemalloc_bg_thd"),
    (" 0.00", "file"),
]
BY_COMM = "\n".join(
    [
        "# To display the perf.data header info, please use --header/--header-only options.",
        "# Samples: 39K of event 'cpu-clock:ppp'",
        "# Overhead  " + "Command".ljust(15),
        "# ........  ...............",
        "#",
        *(f"    {share}%  {name.ljust(15)}" for share, name in _COUNTS),
        "",
    ]
)
BY_SYMBOL = """#
     5.90%  [.] __memmove_avx512_unaligned_erms
     5.51%  [k] clear_page_erms
     4.93%  [.] _PyEval_EvalFrameDefault
"""


def test_shares_are_read_from_perf_reports_text_and_comments_skipped() -> None:
    by_comm = shares(BY_COMM)
    assert by_comm["lakemail"] == 50.89 and by_comm["tokio-rt-worker"] == 10.98
    assert len(by_comm) == 7 and "Overhead  Command" not in " ".join(by_comm)
    assert shares(BY_SYMBOL) == {
        "[.] __memmove_avx512_unaligned_erms": 5.90,
        "[k] clear_page_erms": 5.51,
        "[.] _PyEval_EvalFrameDefault": 4.93,
    }


def test_threads_are_grouped_by_what_runs_on_them() -> None:
    grouped = thread_groups(shares(BY_COMM))
    assert round(grouped[PYTHON_THREADS], 2) == 50.89  # the interpreter's threads carry the command's name
    assert round(grouped["Polars' rayon workers (frame work: filters, sorts, joins, decodes)"], 2) == 18.90
    assert round(sum(grouped.values()), 2) == 100.0
    rows = table("thread group", grouped).splitlines()
    assert rows[4] == f"| {PYTHON_THREADS} | 50.9 |"  # largest first, under its title and header
    assert rows[0] == "By thread group:" and len(rows) == 4 + 5
