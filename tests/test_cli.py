"""The ``sciamba`` command line: the main job end to end, every command, and every bad input.

Most tests call :func:`sciamba.__main__.main` in-process (fast); one runs the
installed entry point in a subprocess to check the exit status and that an
error is one line, without a traceback.
"""

import io
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from sciamba.__main__ import main
from sciamba._cli_data import future_times, read_csv_series


def run_cli(argv, capsys):
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    buf = io.StringIO()
    code = main(list(argv), stdout=buf)
    captured = capsys.readouterr()
    return code, buf.getvalue() + captured.out, captured.err


def assert_one_line_error(code, err, match):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert match in lines[0], lines[0]


# --------------------------------------------------------------------------- help and info


def test_help_and_version(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for command in ("forecast", "classify", "convert-lti", "info"):
        assert command in out
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and "sciamba" in out


def test_info_lists_versions_device_and_backends(capsys):
    code, out, _ = run_cli(["info"], capsys)
    assert code == 0
    import numpy
    import torch

    assert f"numpy         {numpy.__version__}" in out
    assert f"torch         {torch.__version__}" in out
    assert "device" in out
    # The torch backend always runs; each Triton flavour is listed as usable or with a reason.
    assert "torch             yes" in out
    assert "triton" in out and "triton-interpret" in out


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def csv_file(tmp_path, rng):
    n = 300
    t = pd.date_range("2001-01-01", periods=n, freq="D")
    y = np.sin(np.arange(n) / 7.0) + 0.1 * rng.standard_normal(n)
    path = tmp_path / "series.csv"
    pd.DataFrame({"date": t, "flux": y, "label": ["a"] * n}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "argv, match",
    [
        (["forecast", "--csv", "does-not-exist.csv", "--column", "x"], "file not found: does-not-exist.csv"),
        (["forecast", "--netcdf", "missing.nc", "--variable", "x"], "file not found: missing.nc"),
        (["forecast", "--dataset", "sunspots-daily"], "unknown dataset 'sunspots-daily'"),
        (["classify", "--dataset", "ecg9000"], "unknown dataset 'ecg9000'"),
        (["classify", "--ucr", "no/such/UCRDir"], "UCR path not found"),
        (["forecast", "--coverage", "1.5"], "--coverage must be strictly between 0 and 1"),
        (["forecast", "--column", "x"], "--column needs --csv FILE"),
        (["forecast", "--out", "result.xlsx"], "--out must end in .csv or .nc"),
        (["forecast", "--plot", "no/such/dir/f.png"], "its directory does not exist"),
        (["convert-lti", "__import__('os').system('true')", "--dt", "0.1"], "cannot read the system"),
        (["convert-lti", "([1],)", "--dt", "0.1"], "tuple of 2 (num, den)"),
        (["convert-lti", "([1], ['a', 2])", "--dt", "0.1"], "part 2 of the system is not numeric"),
        (["convert-lti", "([1], [1, 2])", "--dt", "-0.1"], "--dt must be a positive finite number"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, match)


def test_csv_column_errors(csv_file, capsys):
    code, _, err = run_cli(["forecast", "--csv", str(csv_file), "--column", "brightness"], capsys)
    assert_one_line_error(code, err, "column 'brightness' not found")
    assert "date, flux, label" in err  # says what is there
    code, _, err = run_cli(["forecast", "--csv", str(csv_file), "--column", "label"], capsys)
    assert_one_line_error(code, err, "non-numeric value(s), e.g. 'a'")
    code, _, err = run_cli(["forecast", "--csv", str(csv_file)], capsys)
    assert_one_line_error(code, err, "choose one with --column NAME")
    code, _, err = run_cli(
        ["forecast", "--csv", str(csv_file), "--column", "flux", "--time-column", "when"], capsys
    )
    assert_one_line_error(code, err, "time column 'when' not found")


def test_csv_time_must_increase(tmp_path, capsys):
    path = tmp_path / "shuffled.csv"
    pd.DataFrame({"time": [3.0, 1.0, 2.0], "y": [1.0, 2.0, 3.0]}).to_csv(path, index=False)
    code, _, err = run_cli(["forecast", "--csv", str(path), "--column", "y"], capsys)
    assert_one_line_error(code, err, "is not strictly increasing")


def test_series_too_short(tmp_path, capsys):
    path = tmp_path / "short.csv"
    pd.DataFrame({"y": np.arange(30.0)}).to_csv(path, index=False)
    code, _, err = run_cli(["forecast", "--csv", str(path), "--column", "y", "--horizon", "12"], capsys)
    assert_one_line_error(code, err, "series too short")
    assert "has 30 values" in err
    # An explicit lookback that the data cannot support is refused the same way.
    code, _, err = run_cli(["forecast", "--dataset", "sunspots-yearly", "--lookback", "300"], capsys)
    assert_one_line_error(code, err, "series too short")


def test_netcdf_variable_errors(tmp_path, capsys):
    path = tmp_path / "two.nc"
    time = pd.date_range("2000-01-01", periods=50, freq="MS")
    xr.Dataset(
        {
            "flux": ("time", np.arange(50.0)),
            "grid": (("station", "time"), np.zeros((2, 50))),
        },
        coords={"time": time},
    ).to_netcdf(path)
    code, _, err = run_cli(["forecast", "--netcdf", str(path), "--variable", "temp"], capsys)
    assert_one_line_error(code, err, "variable 'temp' not found")
    code, _, err = run_cli(["forecast", "--netcdf", str(path), "--variable", "grid"], capsys)
    assert_one_line_error(code, err, "is not one series")
    code, _, err = run_cli(["forecast", "--netcdf", str(path)], capsys)
    assert_one_line_error(code, err, "choose one with --variable NAME")
    bad = tmp_path / "not-netcdf.nc"
    bad.write_text("hello")
    code, _, err = run_cli(["forecast", "--netcdf", str(bad), "--variable", "x"], capsys)
    assert_one_line_error(code, err, "cannot read")


def test_entry_point_error_in_a_subprocess(tmp_path):
    # The real `python -m sciamba`: exit status 2 and a single line on stderr.
    proc = subprocess.run(
        [sys.executable, "-m", "sciamba", "forecast", "--csv", "nope.csv", "--column", "y"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "sciamba forecast: error: file not found: nope.csv"


# --------------------------------------------------------------------------- data helpers


def test_csv_reader_parses_dates_and_missing_values(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("date,y\n2020-01-01,1.5\n2020-01-02,\n2020-01-03,2.5\n")
    s = read_csv_series(str(path), "y")
    np.testing.assert_array_equal(s.values, [1.5, np.nan, 2.5])
    assert s.time.dtype == np.dtype("datetime64[ns]")
    assert str(s.time[-1])[:10] == "2020-01-03"


@pytest.mark.parametrize(
    "freq, expect",
    [("MS", "2009-07-01"), ("YS", "2009-01-01"), ("D", "2008-01-02")],
)
def test_future_times_continue_calendar_sampling(freq, expect):
    t = pd.date_range("2000-01-01", "2008-01-01" if freq != "MS" else "2009-06-01", freq=freq).to_numpy()
    fut = future_times(t, 3)
    assert len(fut) == 3
    assert str(fut[0])[:10] == expect
    assert np.all(np.diff(fut) > np.timedelta64(0))


def test_future_times_month_lengths_without_a_frequency():
    # Mid-month stamps have no pandas frequency; the continuation still steps by calendar months.
    t = np.array([f"2001-{m:02d}-15" for m in range(1, 13)], dtype="datetime64[ns]")
    fut = future_times(t, 2)
    assert [str(x)[:10] for x in fut] == ["2002-01-15", "2002-02-15"]


def test_future_times_numeric():
    fut = future_times(np.array([0.0, 0.5, 1.0, 1.5]), 3)
    np.testing.assert_allclose(fut, [2.0, 2.5, 3.0])
