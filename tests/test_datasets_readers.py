"""Readers: read_ucr (.tsv/.txt/.ts), read_wfdb (wfdb), read_lightcurve (astropy).

Round trips against the staged real files in ../shared/data (skipped when
absent) and against files written here by the field's own writers
(wfdb.wrsamp/wrann, astropy.io.fits) from fresh random data.
"""

import os
import sys

import numpy as np
import pytest
from sciamba.datasets import (
    load_kepler_hatp7,
    load_mitdb_record100,
    read_lightcurve,
    read_ucr,
    read_wfdb,
)


def _one_nn_error(X_train, y_train, X_test, y_test):
    d = ((X_test[:, None, :] - X_train[None, :, :]) ** 2).sum(-1)
    return float(np.mean(y_train[d.argmin(1)] != y_test))


# -- read_ucr on the staged archive files ------------------------------------


@pytest.mark.parametrize("name, error", [("ECG200", 0.12), ("ECGFiveDays", 0.2033)])
def test_read_ucr_staged_sets_reproduce_published_1nn_error(shared_data, name, error):
    # The UCR DataSummary 1-NN Euclidean error is an independent check that
    # every value and label was read into the right place.
    directory = os.path.join(shared_data, f"ucr_{name}")
    X_train, y_train = read_ucr(directory, split="train")
    X_test, y_test = read_ucr(directory, split="test")
    assert X_train.ndim == 3 and X_train.shape[1] == 1 and X_train.dtype == np.float64
    assert y_train.dtype == np.int64
    err = _one_nn_error(X_train[:, 0], y_train, X_test[:, 0], y_test)
    assert err == pytest.approx(error, abs=1e-4)


def test_read_ucr_staged_shapes(shared_data):
    X, y = read_ucr(os.path.join(shared_data, "ucr_ECG200", "ECG200_TRAIN.txt"))
    assert X.shape == (100, 1, 96) and sorted(set(y.tolist())) == [-1, 1]
    assert np.count_nonzero(y == -1) == 31
    X, y = read_ucr(os.path.join(shared_data, "ucr_PigCVP"), split="train")
    assert X.shape == (104, 1, 2000)
    np.testing.assert_array_equal(np.bincount(y)[1:], 2)


def _write_ts(path, X, y, *, header_extra="", labels=True):
    lines = ["# written by the sciamba tests", "@problemName Test", "@timeStamps false"]
    lines.append(f"@univariate {'true' if X[0].shape[0] == 1 else 'false'}")
    lines.append(f"@dimensions {X[0].shape[0]}")
    if labels:
        lines.append("@classLabel true " + " ".join(str(c) for c in sorted(set(y.tolist()))))
    else:
        lines.append("@classLabel false")
    lines.append(header_extra) if header_extra else None
    lines.append("@data")
    for i, case in enumerate(X):
        chans = [",".join("?" if np.isnan(v) else repr(float(v)) for v in ch) for ch in case]
        lines.append(":".join(chans + ([str(y[i])] if labels else [])))
    path.write_text("\n".join(lines) + "\n")


def test_read_ucr_tsv_and_ts_round_trip(shared_data, tmp_path):
    X, y = read_ucr(os.path.join(shared_data, "ucr_ECG200", "ECG200_TEST.txt"))
    tsv = tmp_path / "ECG200_TEST.tsv"
    tsv.write_text(
        "\n".join(
            "\t".join([str(lab)] + [repr(float(v)) for v in row]) for lab, row in zip(y, X[:, 0])
        )
    )
    X2, y2 = read_ucr(tsv)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    ts = tmp_path / "ECG200_TEST.ts"
    _write_ts(ts, X, y)
    X3, y3 = read_ucr(ts)
    np.testing.assert_array_equal(X3, X)
    np.testing.assert_array_equal(y3, y)


def test_read_ucr_multivariate_unequal_ts(rng, tmp_path):
    n_cases, n_channels = 7, 3
    lengths = rng.integers(5, 40, size=n_cases)
    cases = [rng.standard_normal((n_channels, n)) for n in lengths]
    cases[2][1, 3] = np.nan  # a missing value, written as '?'
    labels = rng.choice(np.array(["walk", "run", "jump"]), size=n_cases)
    path = tmp_path / "Motion_TRAIN.ts"
    _write_ts(path, cases, labels, header_extra="@equalLength false")
    X, y = read_ucr(path)
    assert X.shape == (n_cases, n_channels, lengths.max())
    for i, case in enumerate(cases):
        np.testing.assert_array_equal(X[i, :, : lengths[i]], case)
        assert np.all(np.isnan(X[i, :, lengths[i] :]))
    assert np.isnan(X[2, 1, 3])
    np.testing.assert_array_equal(y, labels)


def test_read_ucr_ts_regression_and_unlabelled(rng, tmp_path):
    X = rng.standard_normal((4, 2, 6))
    target = rng.standard_normal(4)
    lines = ["@problemName Reg", "@dimensions 2", "@targetLabel true", "@data"]
    for case, t in zip(X, target):
        lines.append(
            ":".join(",".join(repr(float(v)) for v in ch) for ch in case) + f":{float(t)!r}"
        )
    path = tmp_path / "reg.ts"
    path.write_text("\n".join(lines))
    X2, y2 = read_ucr(path)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, target)
    path = tmp_path / "nolab.ts"
    _write_ts(path, X, None, labels=False)
    X3, y3 = read_ucr(path)
    np.testing.assert_array_equal(X3, X)
    assert y3 is None


def test_read_ucr_2018_nan_padded_tsv_and_comma_txt(tmp_path):
    (tmp_path / "Pad_TRAIN.tsv").write_text("1\t1.5\t2\tNaN\tNaN\n2\t3\t4\t5\tNaN\n")
    X, y = read_ucr(tmp_path / "Pad_TRAIN.tsv")
    assert X.shape == (2, 1, 3)  # the all-NaN padding column is trimmed
    np.testing.assert_array_equal(X[0, 0], [1.5, 2, np.nan])
    np.testing.assert_array_equal(y, [1, 2])
    (tmp_path / "Pad_TEST.txt").write_text("a,0.5,1.5\nb,2.5,3.5\n")
    X, y = read_ucr(tmp_path, split="test")  # directory lookup: <dir name>_TEST or unique match
    np.testing.assert_array_equal(X[:, 0], [[0.5, 1.5], [2.5, 3.5]])
    assert y.tolist() == ["a", "b"]


def test_read_ucr_by_name_from_data_home(tmp_path, monkeypatch, rng):
    monkeypatch.setenv("SCIAMBA_DATA", str(tmp_path))
    folder = tmp_path / "ucr" / "Toy"
    folder.mkdir(parents=True)
    X = rng.standard_normal((3, 1, 5))
    _write_ts(folder / "Toy_TEST.ts", X, np.array([1, 2, 1]))
    X2, y2 = read_ucr("Toy", split="test")
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, [1, 2, 1])
    with pytest.raises(FileNotFoundError, match="no unique"):
        read_ucr("Toy")  # there is no TRAIN file
    with pytest.raises(FileNotFoundError, match=r"fetch_ucr\('Nope'\)"):
        read_ucr("Nope")
    monkeypatch.setenv("SCIAMBA_DATA", str(tmp_path / "fresh"))
    with pytest.raises(FileNotFoundError):
        read_ucr("Nope")
    assert not (tmp_path / "fresh").exists()  # reading created nothing


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("a.ts", "@classLabel true 1\n@data\n1,2:3,4:1\n1,2:1\n", "1 channels, expected 2"),
        ("b.ts", "@classLabel true 1 2\n@data\n1,2:3\n", r"labels \['3'\] are not in @classLabel"),
        ("c.ts", "@timeStamps true\n@data\n(0,1):1\n", "time-stamped"),
        ("d.ts", "@problemName x\n1,2:1\n", "data line before the @data header"),
        ("e.ts", "@problemName x\n", "no @data section"),
        ("f.ts", "@dimensions 3\n@classLabel true 1\n@data\n1,2:1\n", "@dimensions says 3"),
        ("g.ts", "@classLabel maybe\n@data\n1:1\n", "must be true or false"),
        ("h.ts", "@classLabel false\n@data\n1,x,3\n", "non-numeric"),
        ("i.tsv", "1\t2\tabc\n", "non-numeric"),
        ("j.tsv", "1\n", "need a label and at least one value"),
        ("k.csv", "1,2\n", "unknown UCR format"),
    ],
)
def test_read_ucr_malformed_files(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_ucr(path)


def test_read_ucr_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        read_ucr(tmp_path, split="valid")
    (tmp_path / "Toy_TRAIN.tsv").write_text("1\t0.5\n")
    with pytest.raises(ValueError, match="contradicts the file name"):
        read_ucr(tmp_path / "Toy_TRAIN.tsv", split="test")
    assert read_ucr(tmp_path / "Toy_TRAIN.tsv", split="train")[0].shape == (1, 1, 1)


# -- read_wfdb ---------------------------------------------------------------


def test_read_wfdb_matches_shipped_record100(shared_data):
    record = os.path.join(shared_data, "mitdb_record100", "100")
    ds = read_wfdb(record)
    ref = load_mitdb_record100()
    np.testing.assert_array_equal(ds["signal"].values, ref["ecg"].values)
    assert ds.channel.values.tolist() == ["MLII", "V5"]
    assert ds.channel_units.values.tolist() == ["mV", "mV"]
    assert ds.attrs["fs"] == 360.0 and ds.time.attrs["units"] == "s"
    np.testing.assert_array_equal(ds.ann_sample.values, ref.ann_sample.values)
    np.testing.assert_array_equal(ds.ann_symbol.values, ref.ann_symbol.values)
    assert ds.ann_aux_note.values[0] == "(N"
    part = read_wfdb(record + ".hea", channels=[1], sampfrom=1000, sampto=5000)
    assert part["signal"].shape == (1, 4000) and part.channel.values.tolist() == ["V5"]
    np.testing.assert_array_equal(part["signal"].values[0], ref["ecg"].values[1, 1000:5000])
    assert part.time.values[0] == pytest.approx(1000 / 360)
    assert np.all((part.ann_sample.values >= 1000) & (part.ann_sample.values < 5000))


def test_read_wfdb_round_trip_written_record(rng, tmp_path):
    wfdb = pytest.importorskip("wfdb")
    n, fs = int(rng.integers(500, 1500)), 250
    signal = np.cumsum(rng.standard_normal((n, 3)), axis=0) * 0.05  # (time, channel)
    wfdb.wrsamp(
        "rec",
        fs=fs,
        units=["mV", "mV", "mmHg"],
        sig_name=["I", "II", "ABP"],
        p_signal=signal,
        fmt=["16"] * 3,
        write_dir=str(tmp_path),
    )
    samples = np.sort(rng.choice(n, size=8, replace=False))
    symbols = rng.choice(np.array(["N", "V", "A"]), size=8)
    wfdb.wrann("rec", "atr", samples, symbol=list(symbols), write_dir=str(tmp_path))
    ds = read_wfdb(tmp_path / "rec")
    assert ds["signal"].shape == (3, n)
    # Format 16 quantises to the ADC gain chosen by wrsamp: half a count.
    gain = wfdb.rdheader(str(tmp_path / "rec")).adc_gain
    np.testing.assert_allclose(ds["signal"].values, signal.T, atol=0.51 / min(gain))
    assert ds.channel_units.values.tolist() == ["mV", "mV", "mmHg"]
    np.testing.assert_array_equal(ds.ann_sample.values, samples)
    np.testing.assert_array_equal(ds.ann_symbol.values, symbols)
    no_ann = read_wfdb(tmp_path / "rec", annotator=None)
    assert "ann_sample" not in no_ann


def test_read_wfdb_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="WFDB header"):
        read_wfdb(tmp_path / "missing")
    (tmp_path / "x.hea").write_text("x 1 360 10\n")
    with pytest.raises(ValueError, match="sampfrom < sampto"):
        read_wfdb(tmp_path / "x", sampfrom=5, sampto=5)
    monkeypatch.setitem(sys.modules, "wfdb", None)
    with pytest.raises(ImportError, match=r"pip install 'sciamba\[medical\]'"):
        read_wfdb(tmp_path / "x")


# -- read_lightcurve ---------------------------------------------------------


def test_read_lightcurve_matches_shipped_kepler(shared_data):
    path = os.path.join(
        shared_data, "kepler_kic10666592_q0_slc", "kplr010666592-2009131110544_slc.fits"
    )
    ds = read_lightcurve(path)
    ref = load_kepler_hatp7()
    np.testing.assert_array_equal(ds.time.values, ref.time.values)
    for name in ref.data_vars:
        assert ds[name].dtype == ref[name].dtype and ds[name].dtype.isnative
        np.testing.assert_array_equal(ds[name].values, ref[name].values)
    assert ds.attrs["mission"] == "Kepler" and ds.attrs["time_offset"] == 2454833.0
    masked = read_lightcurve(path, quality_bitmask=-1)
    flagged = ref.quality.values != 0
    assert np.all(np.isnan(masked.pdcsap_flux.values[flagged]))
    np.testing.assert_array_equal(masked.sap_flux.values[~flagged], ref.sap_flux.values[~flagged])


def _write_tess_like(path, rng, n):
    fits = pytest.importorskip("astropy.io.fits")
    time = 1500.0 + np.arange(n) * (120 / 86400)
    time[[3, 4]] = np.nan
    flux = rng.normal(1000, 5, n).astype(np.float32)
    flux[7] = np.nan
    quality = np.zeros(n, dtype=np.int32)
    quality[[10, 11]] = [1, 128]
    cols = [
        fits.Column(name="TIME", format="D", unit="BJD - 2457000, days", array=time),
        fits.Column(name="CADENCENO", format="J", array=np.arange(n, dtype=np.int32)),
        fits.Column(name="SAP_FLUX", format="E", array=flux),
        fits.Column(name="SAP_FLUX_ERR", format="E", array=np.full(n, 5, np.float32)),
        fits.Column(name="PDCSAP_FLUX", format="E", array=flux),
        fits.Column(name="PDCSAP_FLUX_ERR", format="E", array=np.full(n, 5, np.float32)),
        fits.Column(name="QUALITY", format="J", array=quality),
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name="LIGHTCURVE")
    hdu.header["BJDREFI"], hdu.header["BJDREFF"] = 2457000, 0.0
    primary = fits.PrimaryHDU()
    primary.header.update(MISSION="TESS", OBJECT="TIC 1234", TICID=1234)
    fits.HDUList([primary, hdu]).writeto(path)
    return time, flux


def test_read_lightcurve_tess_layout(rng, tmp_path):
    n = int(rng.integers(20, 60))
    time, flux = _write_tess_like(tmp_path / "tess_lc.fits", rng, n)
    ds = read_lightcurve(tmp_path / "tess_lc.fits")
    assert ds.sizes["time"] == n - 2 and ds.attrs["n_nan_time_dropped"] == 2
    np.testing.assert_array_equal(ds.time.values, time[np.isfinite(time)])
    np.testing.assert_array_equal(ds.pdcsap_flux.values, flux[np.isfinite(time)])
    assert ds.attrs["mission"] == "TESS" and ds.attrs["target_id"] == 1234
    assert ds.attrs["cadence_s"] == pytest.approx(120)
    masked = read_lightcurve(tmp_path / "tess_lc.fits", quality_bitmask=128)
    q = masked.quality.values
    assert np.all(np.isnan(masked.sap_flux.values[q == 128]))
    assert np.isfinite(masked.sap_flux.values[q == 1]).all()


def test_read_lightcurve_errors(rng, tmp_path, monkeypatch):
    fits = pytest.importorskip("astropy.io.fits")
    fits.HDUList([fits.PrimaryHDU()]).writeto(tmp_path / "empty.fits")
    with pytest.raises(ValueError, match="no LIGHTCURVE extension"):
        read_lightcurve(tmp_path / "empty.fits")
    col = fits.Column(name="TIME", format="D", array=np.arange(3.0))
    hdu = fits.BinTableHDU.from_columns([col], name="LIGHTCURVE")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp_path / "short.fits")
    with pytest.raises(ValueError, match="lacks columns"):
        read_lightcurve(tmp_path / "short.fits")
    with pytest.raises(TypeError, match="quality_bitmask must be an int"):
        read_lightcurve(tmp_path / "short.fits", quality_bitmask=1.5)
    monkeypatch.setitem(sys.modules, "astropy.io.fits", None)
    with pytest.raises(ImportError, match=r"pip install 'sciamba\[astro\]'"):
        read_lightcurve(tmp_path / "short.fits")
