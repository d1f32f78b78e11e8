"""`thrifty-sim` on bad input: one line on stderr, exit status 2, found before the run, never a traceback.

`cli.main` runs in-process; the plot is not drawn (matplotlib takes most of a short run's time) except
where a test says so.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import string
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from thrifty_sim import cli, experiment, trace

# A short generated load without burn-in: about 170 s, a few hundredths of a second per run.
GENERATE = ["--generate", "--days", "0.002", "--burn-in", "0"]
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(argv: Sequence[str], plot: bool = False) -> tuple[int, str, str]:
    """`cli.main(argv)`: (exit status, stdout, stderr); argparse's SystemExit becomes the status."""
    out, err = io.StringIO(), io.StringIO()
    patch = contextlib.nullcontext() if plot else mock.patch("thrifty_sim.plot.write_plot")
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), patch:
        try:
            rc = cli.main(list(argv))
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def assert_one_line_error(rc: int, err: str, *words: str) -> None:
    assert rc == 2, err
    assert err.startswith("thrifty-sim: error: "), err
    assert err.endswith("\n") and err.count("\n") == 1 and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word.lower() in err.lower(), (word, err)


def assert_runs_or_refuses(rc: int, err: str) -> None:
    """The property: exit 0 (notes allowed), or exit 2 with one error line."""
    event(f"exit {rc}")
    assert "Traceback" not in err
    if rc == 2:
        assert_one_line_error(rc, err)
    else:
        assert rc == 0, err
        assert all(line.startswith("thrifty-sim: note: ") for line in err.splitlines()), err


def strict_load(path: Path) -> Any:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode())
    return path


@pytest.fixture
def small_trace(tmp_path: Path) -> Path:
    """200 requests over 300 s."""
    return write(tmp_path / "small.csv", "timestamp\n" + "".join(f"{1.5 * i}\n" for i in range(200)))


# --- numeric flags -------------------------------------------------------------------------------

FLAG_CASES = [
    (["--slo-ms", "0"], ["--slo-ms", "> 0"]),
    (["--slo-ms", "-5"], ["--slo-ms"]),
    (["--slo-ms", "nan"], ["--slo-ms", "'nan'"]),
    (["--slo-ms", "inf"], ["--slo-ms"]),
    (["--min-replicas", "5", "--max-replicas", "2"], ["--min-replicas", "more than --max-replicas 2"]),
    (["--min-replicas", "-1"], ["--min-replicas", "0 to 1000"]),
    (["--max-replicas", "0"], ["--max-replicas", "1 to 1000"]),
    (["--max-replicas", "100000000"], ["--max-replicas", "1 to 1000"]),
    (["--max-replicas", "2.5"], ["--max-replicas", "whole number"]),
    (["--rate-scale", "-1"], ["--rate-scale", "> 0"]),
    (["--rate-scale", "0"], ["--rate-scale", "> 0"]),
    (["--rate-scale", "nan"], ["--rate-scale", "'nan'"]),
    (["--rate-scale", "inf"], ["--rate-scale", "'inf'"]),
    (["--rate-scale=-inf"], ["--rate-scale", "'-inf'"]),
    (["--rate-scale", "1e300"], ["--rate-scale", "at most 1e6"]),
    (["--budget-per-hour", "-1"], ["--budget-per-hour", "from 0 to 1e9"]),
    (["--budget-per-hour", "nan"], ["--budget-per-hour", "'nan'"]),
    (["--budget-per-hour", "inf"], ["--budget-per-hour"]),
    (["--budget-per-month", "-0.5"], ["--budget-per-month", "from 0 to 1e9"]),
    (["--budget-per-month", "NaN"], ["--budget-per-month", "'NaN'"]),
    (["--budget-per-month", "1e308"], ["--budget-per-month", "largest budget"]),
    (["--seed", "-1"], ["--seed", "0 or more"]),
    (["--seed", "1.5"], ["--seed", "whole number"]),
    (["--days", "0"], ["--days", "0.0007"]),
    (["--days", "nan"], ["--days"]),
    (["--days", "1e9"], ["--days", "31"]),
    (["--mean-rps", "-1"], ["--mean-rps", "from 0 to 1e6"]),
    (["--mean-rps", "inf"], ["--mean-rps"]),
    (["--peak-to-mean", "0.5"], ["--peak-to-mean", "from 1 to 10"]),
    (["--peak-to-mean", "nan"], ["--peak-to-mean"]),
    (["--burn-in", "-5"], ["--burn-in", "0 or more"]),
    (["--burn-in", "1.5"], ["--burn-in", "whole number"]),
    (["--burn-in", "\u00b2"], ["--burn-in", "whole number"]),  # str.isdigit() says yes, int() no
    (["--burn-in", "99999999999"], ["--burn-in", "31 days"]),
    (["--hpa-target", "0"], ["--hpa-target", "(0, 1]"]),
    (["--hpa-target", "nan"], ["--hpa-target", "(0, 1]"]),
    (["--hpa-target", "5e-324"], ["--hpa-target", "at least 0.01"]),
    (["--time-unit", "ns"], ["--time-unit", "invalid choice", "'ms'"]),
    (["--policies", ",,"], ["--policies", "none given"]),
    (["--policies", "thrifty,nope"], ["--policies", "'nope'", "static-peak"]),
    (["--slo-ms", "1\n2"], ["--slo-ms", "\\n"]),  # a line break in a value stays on the one line
]


@pytest.mark.parametrize(("extra", "words"), FLAG_CASES, ids=[" ".join(c[0]) for c in FLAG_CASES])
def test_bad_flag_is_one_line_and_exit_2(extra: list[str], words: list[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc, stdout, err = run([*GENERATE, "--out", str(out), *extra])
    assert_one_line_error(rc, err, *words)
    assert not stdout
    assert not out.exists()


def test_the_installed_command_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = write(tmp_path / "t.csv", "timestamp\n0\n100\nnan\n")
    for extra in (["--generate", "--rate-scale", "nan"], ["--trace", str(bad)]):
        proc = subprocess.run(
            [sys.executable, "-m", "thrifty_sim.cli", *extra, "--out", str(tmp_path / "out")],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 2
        assert_one_line_error(proc.returncode, proc.stderr, "thrifty-sim: error:")
        assert proc.stdout == ""


def test_argparse_own_errors_are_one_line_too(tmp_path: Path) -> None:
    for argv, word in (
        (["--out", str(tmp_path)], "--trace --generate"),
        (["--generate"], "--out"),
        (["--generate", "--trace", "x.csv", "--out", str(tmp_path)], "not allowed"),
        ([*GENERATE, "--out", str(tmp_path), "--frobnicate"], "unrecognized"),
        ([*GENERATE, "--out", str(tmp_path), "--slo-ms"], "expected one argument"),
    ):
        rc, _, err = run(argv)
        assert_one_line_error(rc, err, word)


# --- --out ---------------------------------------------------------------------------------------


def test_out_that_is_a_file_is_refused_before_the_run(tmp_path: Path) -> None:
    existing = write(tmp_path / "results", "not a folder")
    started = time.monotonic()
    # 31 days of load would take minutes to simulate: the error must come first.
    rc, _, err = run(["--generate", "--days", "31", "--out", str(existing)])
    assert time.monotonic() - started < 5
    assert_one_line_error(rc, err, "--out", "exists and is not a directory")
    assert existing.read_text() == "not a folder"


def test_out_below_a_file_or_with_a_folder_for_results_json_is_refused(tmp_path: Path) -> None:
    existing = write(tmp_path / "file", "x")
    rc, _, err = run([*GENERATE, "--out", str(existing / "sub" / "dir")])
    assert_one_line_error(rc, err, "--out", "is not a directory")
    out = tmp_path / "out"
    (out / "results.json").mkdir(parents=True)
    rc, _, err = run([*GENERATE, "--out", str(out)])
    assert_one_line_error(rc, err, "--out", "results.json", "not a file")


def test_an_existing_out_folder_is_reused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    write(out / "results.json", "old")
    write(out / "other.txt", "kept")
    rc, _, err = run([*GENERATE, "--out", str(out)])
    assert rc == 0, err
    assert strict_load(out / "results.json")["policies"]
    assert (out / "other.txt").read_text() == "kept"


# --- trace rows ----------------------------------------------------------------------------------

TRACE_CASES = [
    ("nan-timestamp", "timestamp\n0\nnan\n100\n", ["bad.csv:3", "'nan'", "not finite"]),
    ("inf-timestamp", "timestamp\n0\n50\ninf\n", ["bad.csv:4", "'inf'", "not finite"]),
    ("minus-inf-timestamp", "timestamp\n-inf\n0\n100\n", ["bad.csv:2", "not finite"]),
    ("huge-timestamp", "ts\n0\n1e400\n", ["bad.csv:3", "not finite"]),
    ("unsorted", "timestamp\n0\n100\n50\n200\n", ["bad.csv:4", "earlier than line 3", "sorted"]),
    ("unsorted-iso", "time\n2024-01-01T00:10:00\n2024-01-01T00:05:00\n", ["bad.csv:3", "sorted"]),
    (
        "non-numeric-count",
        "timestamp,count\n0,1\n100,abc\n",
        ["bad.csv:3", "request count 'abc'", "not a number"],
    ),
    ("negative-count", "timestamp,count\n0,1\n100,-2\n", ["bad.csv:3", "request count '-2'", "negative"]),
    ("nan-count", "timestamp,requests\n0,1\n100,nan\n", ["bad.csv:3", "'nan'", "not finite"]),
    ("fractional-count", "timestamp,count\n0,1.5\n100,2\n", ["bad.csv:2", "'1.5'", "whole number"]),
    ("empty-count", "timestamp,count\n0,1\n100,\n", ["bad.csv:3", "request count ''"]),
    ("huge-count", "timestamp,count\n0,1\n100,1e30\n", ["bad.csv:3", "more than 1e9"]),
    (
        "too-few-fields",
        "timestamp,a,b\n0,1,2\n50,1\n100,1,2\n",
        ["bad.csv:3", "2 fields, expected 3", "timestamp,a,b"],
    ),
    ("too-many-fields", "timestamp\n0\n50,7\n100\n", ["bad.csv:3", "2 fields, expected 1", "(timestamp)"]),
    ("missing-timestamp", "timestamp,x\n0,1\n,2\n100,3\n", ["bad.csv:3", "no timestamp in column timestamp"]),
    (
        "no-timestamp-column",
        "a,b\n1,2\n3,4\n",
        ["no timestamp column", "timestamp, time, ts, arrival_time", "'a,b'"],
    ),
    ("garbled-timestamp", "TIMESTAMP,x\nyesterday,1\n", ["bad.csv:2", "unusable timestamp", "ISO 8601"]),
    ("mixed-kinds", "timestamp\n2024-01-01T00:00:00\n1700000000\n", ["bad.csv:3", "a number", "line 2"]),
    (
        "nanosecond-epoch",
        "timestamp\n1700000000000000000\n1700000100000000000\n",
        ["nanoseconds", "--time-unit"],
    ),
    ("one-row", "timestamp\n5\n", ["1 timestamped row", "at least 2"]),
    ("header-only", "timestamp\n", ["0 timestamped rows"]),
    ("empty", "", ["empty trace"]),
    ("blank", "\n\n  \n", ["empty trace"]),
    ("too-short", "timestamp\n0\n30\n", ["spans 30 s", "at least 60 s"]),
    ("nul-byte", "timestamp\n0\n1\x00\n100\n", ["bad.csv:3", "unusable timestamp '1\\x00'"]),
    ("unclosed-quote", 'timestamp,x\n0,"abc\n', ["bad.csv"]),
]


@pytest.mark.parametrize(("content", "words"), [c[1:] for c in TRACE_CASES], ids=[c[0] for c in TRACE_CASES])
def test_bad_trace_is_one_line_naming_the_line(content: str, words: list[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc, _, err = run(["--trace", str(write(tmp_path / "bad.csv", content)), "--out", str(out)])
    assert_one_line_error(rc, err, *words)
    assert not out.exists()


def test_unreadable_traces_are_one_line(tmp_path: Path) -> None:
    cases = {
        tmp_path / "missing.csv": "cannot read trace",
        tmp_path: "cannot read trace",  # a directory
        write(tmp_path / "latin1.csv", "timestamp,name\n0,caf\xe9\n100,x\n".encode("latin-1")): "not UTF-8",
    }
    for path, words in cases.items():
        rc, _, err = run(["--trace", str(path), "--out", str(tmp_path / "out")])
        assert_one_line_error(rc, err, words)


def test_time_unit_ms_explicitly_shortens_the_span(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "timestamp\n0\n3000\n")
    rc, _, err = run(["--trace", str(path), "--time-unit", "ms", "--out", str(tmp_path / "out")])
    assert_one_line_error(rc, err, "spans 3 s", "read as milliseconds", "at least 60 s")


def test_a_span_beyond_floats_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "ts\n-1.7e308\n1.7e308\n")
    rc, _, err = run(["--trace", str(path), "--time-unit", "s", "--out", str(tmp_path / "out")])
    assert_one_line_error(rc, err, "span more than a float holds")


def test_scaled_load_beyond_what_can_be_simulated_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "timestamp,count\n0,1000000000\n100,1000000000\n")
    rc, _, err = run(["--trace", str(path), "--rate-scale", "1000", "--out", str(tmp_path / "out")])
    assert_one_line_error(rc, err, "rate scale 1000", "at most 1e9")


def test_bad_catalogue_and_report_files_are_one_line(tmp_path: Path) -> None:
    binary = write(tmp_path / "bin.yaml", b"\xff\xfe\x00garbage")
    nan_report = write(
        tmp_path / "nan.json",
        '{"selected": "a", "variants": [{"name": "a", "device": "cpu", "throughput_per_s": NaN, '
        '"latency_ms": {"p50": 1, "p99": 2}}]}',
    )
    for extra, words in (
        (["--pools", str(binary)], ["pool catalogue", "not UTF-8"]),
        (["--pools", str(tmp_path / "nope.yaml")], ["pool catalogue", "cannot read"]),
        (["--capacity", str(binary)], ["capacity report", "not UTF-8"]),
        (["--capacity", str(write(tmp_path / "list.json", "[1, 2]"))], ["not a JSON object"]),
        (["--capacity", str(nan_report)], ["throughput_per_s", "finite number > 0"]),
    ):
        rc, _, err = run([*GENERATE, "--out", str(tmp_path / "out"), *extra])
        assert_one_line_error(rc, err, *words)


# --- what a trace may be -------------------------------------------------------------------------


def test_bom_and_crlf_read_like_plain_text(tmp_path: Path) -> None:
    rows = ["TIMESTAMP,ContextTokens", "2023-11-16 18:15:46.6805900,374", "2023-11-16 18:17:50.9951690,396"]
    plain = write(tmp_path / "plain.csv", "\n".join(rows) + "\n")
    windows = write(tmp_path / "windows.csv", b"\xef\xbb\xbf" + ("\r\n".join(rows) + "\r\n").encode())
    assert np.array_equal(trace.load_arrivals(plain), trace.load_arrivals(windows))
    rc, _, err = run(["--trace", str(windows), "--out", str(tmp_path / "out")])
    assert rc == 0, err
    assert err == ""  # datetimes: no unit to pick


@pytest.mark.parametrize(
    ("unit", "scale", "first"),
    [("s", 1, 1.7e9), ("ms", 1e3, 1.7e12), ("us", 1e6, 1.7e15)],
)
def test_auto_time_unit_reads_epochs_by_magnitude(
    unit: str, scale: float, first: float, tmp_path: Path
) -> None:
    seconds = [0.0, 1.0, 3.0, 90.0, 400.0]
    path = write(tmp_path / "t.csv", "timestamp\n" + "".join(f"{first + s * scale:.0f}\n" for s in seconds))
    t = trace.read(path)
    assert t.unit == unit
    assert t.arrivals == pytest.approx(seconds, abs=1e-6)
    rc, _, err = run(["--trace", str(path), "--out", str(tmp_path / "out")])
    assert rc == 0
    names = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}
    ranges = {"s": "1e8-1e11", "ms": "1e11-1e14", "us": "1e14-1e17"}
    assert err == (
        f"thrifty-sim: note: --time-unit auto: timestamps read as {names[unit]} since the epoch "
        f"(the first timestamp, {first:.4g}, is in {ranges[unit]}); --time-unit overrides\n"
    )
    assert strict_load(tmp_path / "out" / "results.json")["trace"]["time_unit"] == unit
    # Given explicitly: no note.
    rc, _, err = run(["--trace", str(path), "--time-unit", unit, "--out", str(tmp_path / "out")])
    assert (rc, err) == (0, "")


def test_relative_timestamps_are_seconds_and_said_so(small_trace: Path, tmp_path: Path) -> None:
    rc, _, err = run(["--trace", str(small_trace), "--out", str(tmp_path / "out")])
    assert rc == 0
    assert "read as seconds from any origin" in err and err.count("\n") == 1


def test_count_column_is_the_same_load_as_repeated_rows(tmp_path: Path) -> None:
    rows = write(tmp_path / "rows.csv", "time\n0\n0\n0\n5.5\n70\n70\n")
    counted = write(tmp_path / "counted.csv", "time,count\n0,3\n5.5,1\n30,0\n70,2\n")
    a = trace.per_second_counts(trace.load_arrivals(rows))
    t = trace.read(counted)
    b = trace.per_second_counts(t.arrivals, weights=t.weights)
    assert np.array_equal(a, b)
    assert a.sum() == 6


def test_blank_lines_are_skipped_and_quoted_fields_counted_by_line(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", '\ntimestamp,note\n0,"two\nlines"\n\n100,x\n\n200,"a\nb",\n')
    with pytest.raises(trace.TraceError, match=r"t\.csv:9: 3 fields, expected 2"):
        trace.read(path)
    assert list(trace.read(write(tmp_path / "ok.csv", "\ntimestamp\n0\n\n100\n\n")).arrivals) == [0.0, 100.0]


def test_a_year_long_gap_runs_in_seconds_and_little_memory(tmp_path: Path) -> None:
    path = write(tmp_path / "year.csv", "timestamp\n1700000000\n1715000000\n1731536000\n")
    out = tmp_path / "out"
    started = time.monotonic()
    rc, _, err = run(["--trace", str(path), "--out", str(out)])
    assert time.monotonic() - started < 5
    assert rc == 0, err
    assert "2 idle gaps longer than 3600 s shortened to 3600 s" in err
    results = strict_load(out / "results.json")
    assert results["load"]["seconds"] == 7201
    assert results["trace"]["idle_gaps_shortened"] == 2
    assert results["trace"]["idle_seconds_left_out"] == 31536000 - 7200
    tracemalloc.start()  # slows Python down several times: memory only
    try:
        assert run(["--trace", str(path), "--policies", "thrifty,oracle", "--out", str(out)])[0] == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20


def test_gaps_are_shortened_in_linear_time_and_short_ones_kept_exactly() -> None:
    arrivals = np.array([0.0, 10.25, 3600.5, 1e7, 1e7 + 1.5])
    with tempfile.TemporaryDirectory() as d:
        path = write(Path(d) / "t.csv", "timestamp\n" + "".join(f"{a!r}\n" for a in arrivals))
        t = trace.read(path)
    assert list(t.arrivals) == [0.0, 10.25, 3600.5, 7200.5, 7202.0]
    assert t.gaps_shortened == 1
    with tempfile.TemporaryDirectory() as d:  # a gap that dwarfs the float's precision
        t = trace.read(write(Path(d) / "t.csv", "timestamp\n0\n0\n3.689348814741911e+19\n"))
    assert list(t.arrivals) == [0.0, 0.0, 3600.0]


def test_a_month_of_hourly_rows_is_refused_not_simulated_for_hours(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "timestamp\n" + "".join(f"{3600 * i}\n" for i in range(800)))
    rc, _, err = run(["--trace", str(path), "--out", str(tmp_path / "out")])
    assert_one_line_error(rc, err, "spans 2876400 s", "at most 2678400 s (31 days)")


# --- results are strict JSON ---------------------------------------------------------------------


def test_strict_json_writes_null_for_non_finite_numbers_and_says_why() -> None:
    doc = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": "nan", "e": np.float64("nan")}
    text = experiment.strict_json(doc)
    parsed = json.loads(text, parse_constant=lambda c: pytest.fail(c))
    assert parsed["a"] is None and parsed["b"][1] is None and parsed["b"][2]["c"] is None
    assert parsed["d"] == "nan"
    assert parsed["null_values"]["values"] == {"a": "nan", "b[1]": "inf", "b[2].c": "-inf", "e": "nan"}
    assert parsed["null_values"]["count"] == 4 and "not finite" in parsed["null_values"]["note"]
    assert experiment.strict_json({"x": [1.5, 2]}) == json.dumps({"x": [1.5, 2]}, indent=1)


def test_results_json_is_strict_for_a_load_without_requests(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc, _, err = run([*GENERATE, "--mean-rps", "0", "--min-replicas", "0", "--out", str(out)], plot=True)
    assert rc == 0, err
    results = strict_load(out / "results.json")
    assert results["load"]["requests"] == 0
    assert results["load"]["peak_to_mean_per_minute"] == 1.0
    assert (out / "plot.png").stat().st_size > 0


# --- properties ----------------------------------------------------------------------------------


def _half(first: st.SearchStrategy[Any], second: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`first` or `second`, each about half the time (st.one_of weighs every branch of both alike)."""
    return st.booleans().flatmap(lambda b: first if b else second)


_FIELD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.integers(0, 400).map(str),
    st.sampled_from(
        ["", " ", "nan", "-inf", "1e400", "2024-01-01T00:00:00", "2024-01-01 00:02:00Z", "x", '"']
    ),
    st.text(string.printable, max_size=8),
)
_HEADER = st.lists(
    st.sampled_from(["timestamp", "TIMESTAMP", "time", "ts", "count", "requests", "x", "", "Arrival_Time"]),
    min_size=1,
    max_size=4,
)


_TIME = st.one_of(st.integers(0, 500), st.floats(0, 1e4), st.floats(-1e20, 1e20))


@st.composite
def _csv_traces(draw: st.DrawFn) -> bytes:
    """CSV traces, about half of them well-formed, the others with some rows or the order mangled."""
    header = draw(_HEADER)
    n = draw(st.integers(0, 8))
    times = draw(st.lists(_TIME, min_size=n, max_size=n))
    clean = draw(st.booleans())
    if clean or draw(st.booleans()):
        times.sort()
    lines = [",".join(header)]
    for t in times:
        if clean or draw(st.integers(0, 3)):
            lines.append(",".join(str(t) if h.lower() in trace._TIME_COLUMNS else "1" for h in header))
        else:
            width = draw(st.integers(max(1, len(header) - 1), len(header) + 1))
            lines.append(",".join(draw(_FIELD) for _ in range(width)))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + draw(st.sampled_from(["", newline, newline * 2]))
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + text.encode()


@PROPERTY
@given(
    content=_half(_csv_traces(), st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
)
def test_any_trace_file_runs_or_is_refused_with_one_line(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = write(Path(d) / "trace.csv", content)
        rc, _, err = run(["--trace", str(path), "--out", str(Path(d) / "out")])
        assert_runs_or_refuses(rc, err)
        if rc == 0:
            strict_load(Path(d) / "out" / "results.json")


_ANY_NUMBER = st.one_of(
    st.floats(-2, 20).map(repr),  # near every flag's range, so that valid values run too
    st.integers(-2, 1200).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(
        ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e308", "-0", "0", "1_000", " 3 ", ""]
    ),
    st.text(max_size=6),
)
# Flags the generated load takes, with values in range that run in a fraction of a second (a long
# valid --days runs for minutes: test_long_loads_are_accepted_or_refused_by_the_parser covers them all).
_VALID = {
    "--slo-ms": st.floats(0, 1000),
    "--budget-per-hour": st.floats(0, 10),
    "--budget-per-month": st.floats(0, 5000),
    "--seed": st.integers(0, 2**64),
    "--mean-rps": st.floats(0, 3000),
    "--peak-to-mean": st.floats(0.9, 10.1),
    "--hpa-target": st.floats(0, 1),
    "--min-replicas": st.integers(0, 120),
    "--max-replicas": st.integers(0, 1001),
    "--days": st.floats(0.0006, 0.01),
}


@pytest.mark.parametrize("flag", sorted(_VALID))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_of_a_numeric_flag_runs_or_is_refused_with_one_line(flag: str, data: st.DataObject) -> None:
    value = data.draw(_half(_VALID[flag].map(str), _ANY_NUMBER), label="value")
    if flag == "--days":
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if math.isfinite(number) and number > 0.01:
            value = "0.01"
    with tempfile.TemporaryDirectory() as d:
        rc, _, err = run([*GENERATE, f"{flag}={value}", "--out", str(Path(d) / "out")])
        assert_runs_or_refuses(rc, err)


@PROPERTY
@given(value=_ANY_NUMBER, flag=st.sampled_from(["--days", "--burn-in"]))
def test_long_loads_are_accepted_or_refused_by_the_parser(value: str, flag: str) -> None:
    parsed = None
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parsed = cli._parser().parse_args(["--generate", "--out", "o", f"{flag}={value}"])
        except SystemExit as e:
            assert e.code == 2
    if parsed is None:
        assert_one_line_error(2, err.getvalue(), flag)
    else:
        got = parsed.days if flag == "--days" else parsed.burn_in
        assert math.isfinite(got)
        assert (cli.MIN_DAYS <= got <= 31) if flag == "--days" else (0 <= got <= 31 * 86_400)


@PROPERTY
@given(
    scale=_half(st.floats(0, 100).map(str), _ANY_NUMBER),
    burn_in=_half(st.integers(0, 10**7).map(str), _ANY_NUMBER),
    unit=st.sampled_from(["auto", "s", "ms", "us"]),
)
def test_any_trace_flags_run_or_are_refused_with_one_line(scale: str, burn_in: str, unit: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = write(Path(d) / "t.csv", "timestamp\n" + "".join(f"{150 * i}\n" for i in range(3)))
        argv = ["--trace", str(path), f"--rate-scale={scale}", f"--burn-in={burn_in}", "--time-unit", unit]
        rc, _, err = run([*argv, "--out", str(Path(d) / "out")])
        assert_runs_or_refuses(rc, err)


@PROPERTY
@given(low=st.integers(-5, 1005), high=st.integers(-5, 1005))
def test_any_replica_range_runs_or_is_refused_with_one_line(low: int, high: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        argv = [*GENERATE, "--days", "0.0007", f"--min-replicas={low}", f"--max-replicas={high}"]
        rc, _, err = run([*argv, "--out", str(Path(d) / "out")])
        assert_runs_or_refuses(rc, err)
        assert (rc == 0) == (0 <= low <= high and 1 <= high <= 1000)
