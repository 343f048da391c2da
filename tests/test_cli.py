"""The ``sciamba`` command line: the main job end to end, every command, and every bad input.

Most tests call :func:`sciamba.__main__.main` in-process (fast); one runs the
installed entry point in a subprocess to check the exit status and that an
error is one line, without a traceback.
"""

import io
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


# --------------------------------------------------------------------------- convert-lti


def _max_relative_error(out):
    import re

    m = re.search(r"largest relative error ([0-9.e+-]+)", out)
    assert m, out
    return float(m.group(1))


@pytest.mark.parametrize(
    "system, extra",
    [
        ("([1], [1, 0.2, 4])", ["--dt", "0.05"]),  # the damped oscillator
        ("([1, 3], [1, 0.5, 2, 1])", ["--dt", "0.1", "--method", "bilinear"]),
        ("([-1], [-2+1j, -2-1j], 3)", ["--dt", "0.1", "--method", "foh"]),  # zeros, poles, gain
        ("([0.5], [1, -0.9])", ["--dt", "1", "--discrete"]),  # already discrete
        # MIMO state space: 2 inputs, 3 outputs
        ("([[-1, 0.5], [0, -2]], [[1, 0], [0, 1]], [[1, 1], [0, 1], [1, 0]], [[0, 0], [0, 0], [0, 1]])",
         ["--dt", "0.2"]),
    ],
)
def test_convert_lti_matches_scipy(system, extra, capsys):
    code, out, err = run_cli(["convert-lti", system, *extra, "--seed", "3"], capsys)
    assert code == 0, err
    assert "OK" in out
    assert _max_relative_error(out) <= 1e-8
    assert "Ad =" in out and "discrete poles" in out


def test_convert_lti_prints_the_discretization_scipy_gives(capsys):
    from scipy import signal

    code, out, _ = run_cli(["convert-lti", "([1], [1, 0.2, 4])", "--dt", "0.05"], capsys)
    assert code == 0
    assert "scipy.signal.cont2discrete gives the same matrices" in out
    Ad = signal.cont2discrete(signal.tf2ss([1], [1, 0.2, 4]) + (), 0.05)[0]
    assert f"{Ad[0, 0]:.6f}" in out
    poles = np.roots([1, 0.2, 4])
    assert f"{abs(poles[0].imag):.6f}" in out  # continuous poles -0.1 +- 1.997498j


def test_convert_lti_plot_and_bad_systems(tmp_path, capsys):
    png = tmp_path / "step.png"
    code, _, _ = run_cli(["convert-lti", "([2], [1, 3, 2])", "--dt", "0.1", "--plot", str(png)], capsys)
    assert code == 0 and png.stat().st_size > 1000
    code, _, err = run_cli(["convert-lti", "([1, 2, 3], [1, 1])", "--dt", "0.1"], capsys)
    assert_one_line_error(code, err, "Improper transfer function")
    code, _, err = run_cli(["convert-lti", "([1], [1, 1])", "--dt", "0.1", "--steps", "1"], capsys)
    assert_one_line_error(code, err, "--steps must be at least 2")


# --------------------------------------------------------------------------- the main job, end to end


def test_default_main_job_end_to_end(tmp_path, monkeypatch, capsys):
    # `sciamba` with no arguments: monthly sunspots, one solar cycle ahead, with a
    # short training budget (SCIAMBA_FAST=1) so the test stays quick.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCIAMBA_FAST", "1")
    code, out, err = run_cli([], capsys)
    assert code == 0, err
    for needle in ("sunspots-monthly", "3126 values", "held back the last 132 values",
                   "device", "selective-scan backend", "validation loss", "Mamba", "naive", "AR(",
                   "90% interval holds", "2009-07-01 .. 2020-06-01"):
        assert needle in out, (needle, out)
    assert (tmp_path / "forecast.png").stat().st_size > 10_000
    table = pd.read_csv(tmp_path / "forecast.csv", parse_dates=["time"])
    assert list(table["segment"].unique()) == ["held-back", "forecast"]
    held = table[table.segment == "held-back"]
    fut = table[table.segment == "forecast"]
    assert len(held) == 132 and len(fut) == 132
    assert str(fut.time.iloc[0].date()) == "2009-07-01" and str(fut.time.iloc[-1].date()) == "2020-06-01"
    assert str(held.time.iloc[0].date()) == "1998-07-01"
    for col in ("forecast", "lower", "upper", "naive"):
        assert np.isfinite(table[col]).all()
    assert (table.lower <= table.forecast + 1e-9).all() and (table.forecast <= table.upper + 1e-9).all()
    # The held-back rows carry the truth, and the report's numbers are computed from them.
    from sciamba.datasets import load_sunspots

    values = load_sunspots(freq="monthly").values
    truth = values[-132:]
    np.testing.assert_allclose(held.observed, truth, rtol=1e-6)
    np.testing.assert_allclose(held.naive, np.full(132, values[-133]), rtol=1e-6)  # last seen value
    naive_rmse = np.sqrt(np.mean((values[-133] - truth) ** 2))
    assert f"{naive_rmse:10.3f}" in out


def test_forecast_csv_to_netcdf(tmp_path, monkeypatch, capsys, rng):
    monkeypatch.setenv("SCIAMBA_FAST", "1")
    n = 240
    t = np.arange(n) * 0.5  # a numeric time column, half-day steps
    y = 10 + np.sin(2 * np.pi * t / 12.0) + 0.1 * rng.standard_normal(n)
    y[100:103] = np.nan  # a gap: the model skips it, the baselines interpolate it
    path = tmp_path / "obs.csv"
    pd.DataFrame({"t": t, "level": y}).to_csv(path, index=False)
    out_nc = tmp_path / "fc.nc"
    code, out, err = run_cli(
        ["forecast", "--csv", str(path), "--column", "level", "--horizon", "10", "--out", str(out_nc),
         "--plot", "", "--quiet", "--seed", "1"], capsys)
    assert code == 0, err
    assert "3 missing" in out
    ds = xr.open_dataset(out_nc)
    fut = ds.where(ds.segment == "forecast", drop=True)
    np.testing.assert_allclose(fut.time.values, t[-1] + 0.5 * np.arange(1, 11))
    assert ds.attrs["coverage"] == 0.9
    assert np.isfinite(ds.forecast.values).all()
    ds.close()


def test_forecast_netcdf_input(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCIAMBA_FAST", "1")
    from sciamba.datasets import load_sunspots

    path = tmp_path / "yearly.nc"
    load_sunspots(freq="yearly").to_dataset().to_netcdf(path)
    code, out, err = run_cli(
        ["forecast", "--netcdf", str(path), "--variable", "sunspot_number", "--plot", "", "--out", "",
         "--quiet"], capsys)
    assert code == 0, err
    assert "309 values" in out and "held back the last 12 values" in out


# --------------------------------------------------------------------------- classify


def _write_ucr(folder, rng, n=24, length=40):
    folder.mkdir()
    t = np.linspace(0, 1, length)
    for split in ("TRAIN", "TEST"):
        labels = np.repeat([1, 2], n // 2)
        X = np.where(labels[:, None] == 1, np.sin(8 * t), np.sign(np.sin(8 * t)))
        X = X + 0.3 * rng.standard_normal((n, length))
        rows = np.column_stack([labels, X])
        np.savetxt(folder / f"{folder.name}_{split}.tsv", rows, delimiter="\t", fmt="%.6f")


def test_classify_ucr_folder_end_to_end(tmp_path, monkeypatch, capsys, rng):
    monkeypatch.setenv("SCIAMBA_FAST", "1")
    folder = tmp_path / "Toy"
    _write_ucr(folder, rng)
    png = tmp_path / "cm.png"
    code, out, err = run_cli(["classify", "--ucr", str(folder), "--plot", str(png), "--quiet"], capsys)
    assert code == 0, err
    assert "24 train / 24 test series" in out and "accuracy" in out
    assert "confusion matrix" in out
    # The matrix rows add up to the test counts per class.
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "confusion matrix" in line)
    assert lines[start + 1].split() == ["1", "2"]  # header: predicted classes
    rows = [line.split() for line in lines[start + 2 : start + 4]]
    assert [r[0] for r in rows] == ["1", "2"]
    assert [sum(int(v) for v in r[1:]) for r in rows] == [12, 12]
    assert png.stat().st_size > 5000
    # The _TRAIN file names the pair too; a lone file does not.
    code, out, _ = run_cli(["classify", "--ucr", str(folder / "Toy_TRAIN.tsv"), "--plot", "", "--quiet"], capsys)
    assert code == 0 and "24 train / 24 test" in out
    (tmp_path / "lone.tsv").write_text("1\t0.5\t0.2\n")
    code, _, err = run_cli(["classify", "--ucr", str(tmp_path / "lone.tsv")], capsys)
    assert_one_line_error(code, err, "not a UCR NAME_TRAIN/NAME_TEST file")


def test_mitdb_beats_split_leaves_out_the_single_v_beat():
    from sciamba._cli_data import load_classify_dataset

    data = load_classify_dataset("mitdb100-beats", seed=0, test_size=0.3)
    assert data.X_train.shape[1:] == (2, 84)  # decimated 360 -> 120 Hz
    assert set(np.unique(data.y_train)) == {"A", "N"} == set(np.unique(data.y_test))
    assert len(data.y_train) + len(data.y_test) == 2270
    assert any("single example" in note and "V" in note for note in data.notes)
    # stratified: the rare class is in both parts, in proportion
    assert abs(np.mean(data.y_test == "A") - 33 / 2270) < 0.005


def test_readme_main_job_command_is_valid():
    # The README's first command must keep working as the CLI evolves.
    import re
    import shlex
    from pathlib import Path

    from sciamba._cli import build_parser

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    m = re.search(r"python3 -m pip install -e \"\.\[all\]\" && python3 -m sciamba (.+)", readme)
    assert m, "README lost its main-job command"
    args = build_parser().parse_args(shlex.split(m.group(1)))
    assert (args.command, args.dataset, args.horizon, args.plot) == (
        "forecast", "sunspots-monthly", 132, "forecast.png")


def _small_csv(tmp_path, rng):
    t = np.arange(200.0)
    y = 5 + np.sin(2 * np.pi * t / 20.0) + 0.1 * rng.standard_normal(t.size)
    path = tmp_path / "small.csv"
    pd.DataFrame({"t": t, "y": y}).to_csv(path, index=False)
    return path


def test_seed_makes_runs_reproducible_and_quiet_silences_progress(tmp_path, monkeypatch, capsys, rng):
    monkeypatch.setenv("SCIAMBA_FAST", "1")
    path = _small_csv(tmp_path, rng)
    base = ["forecast", "--csv", str(path), "--column", "y", "--horizon", "8", "--plot", ""]
    tables = []
    for seed, quiet in ((7, True), (7, False), (8, True)):
        out_csv = tmp_path / f"fc_{seed}_{quiet}.csv"
        argv = base + ["--seed", str(seed), "--out", str(out_csv)] + (["--quiet"] if quiet else [])
        code, _, err = run_cli(argv, capsys)
        assert code == 0, err
        if quiet:
            assert err == ""  # no progress bar, no warnings
        else:
            assert "epoch" in err  # the tqdm bar of the training loop
        tables.append(pd.read_csv(out_csv))
    pd.testing.assert_frame_equal(tables[0], tables[1])  # same seed: same forecast
    assert not np.allclose(tables[0].forecast, tables[2].forecast)  # another seed: another model


def test_cuda_device_without_cuda_is_one_line(tmp_path, monkeypatch, capsys, rng):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("SCIAMBA_FAST", "1")
    path = _small_csv(tmp_path, rng)
    code, _, err = run_cli(["forecast", "--csv", str(path), "--column", "y", "--horizon", "8",
                            "--device", "cuda", "--plot", "", "--out", "", "--quiet"], capsys)
    assert_one_line_error(code, err, "torch sees no CUDA device")
