"""Loaders of the real astronomy and medical datasets shipped with sciamba.

Every loader verifies the SHA-256 digest of its file (see
``datasets/data/checksums.json``) before reading it, and returns an
:class:`xarray.DataArray` or :class:`xarray.Dataset` whose ``time``
coordinate carries its unit in ``attrs["units"]`` and whose ``attrs`` hold
``source``, ``license`` and ``citation`` (full text in
``datasets/data/LICENSES.md``).
"""

from __future__ import annotations

import csv
import gzip
from typing import Literal

import numpy as np
import xarray as xr

from ._base import provenance_attrs, shipped_path
from ._beats import BEAT_SYMBOLS, segment_beats, window_samples
from ._fits import FLUX_COLUMNS, lightcurve_dataset

__all__ = [
    "load_sunspots",
    "load_ecg_mitdb208",
    "load_mitdb_record100",
    "load_kepler_hatp7",
    "load_macho",
]

_ECG_FS = 360.0


def _check_flag(name: str, value: object) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def _read_csv_gz(path) -> tuple[list[str], list[list[str]]]:
    with gzip.open(path, "rt", encoding="ascii", newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def load_sunspots(
    freq: Literal["yearly", "monthly"] = "yearly", *, as_numpy: bool = False
) -> xr.DataArray | np.ndarray:
    """Wolf (international, version 1) sunspot numbers.

    ``freq="yearly"``: yearly means 1700-2008 (309 values), the classic
    Box-Jenkins / Zhang (2003) forecasting benchmark. ``freq="monthly"``:
    monthly means 1749-01 to 2009-06 (3,126 values). Both show the ~11-year
    solar cycle.

    Parameters
    ----------
    freq : {"yearly", "monthly"}, default "yearly"
        Which series.
    as_numpy : bool, default False
        Return the values as a 1-D float64 array instead of a DataArray.

    Returns
    -------
    DataArray or ndarray, shape (n_times,)
        Named ``"sunspot_number"``, float64, dims ``("time",)``. ``time`` is
        ``datetime64[ns]`` and labels the first day of each averaging period
        (``attrs["freq"]`` is the pandas alias ``"YS"`` or ``"MS"``).
        ``attrs["fs"]`` is the sampling rate in ``attrs["fs_units"]``
        (``"1/year"``: 1 or 12). Provenance in ``attrs["source"]``,
        ``attrs["license"]`` (public domain), ``attrs["citation"]``.

    Notes
    -----
    These are version-1 sunspot numbers, as in the statsmodels ``sunspots``
    dataset and the forecasting literature before 2015. SILSO's version 2
    (2015 recalibration) is roughly 1.4-1.7 times larger: do not mix them.
    The source marks 2009-01 to 2009-06 as preliminary.

    References
    ----------
    .. [1] SIDC/SILSO, Royal Observatory of Belgium; NOAA National Geophysical
       Data Center, http://www.ngdc.noaa.gov/stp/solar/solarda3.html
    .. [2] Zhang GP. Time series forecasting using a hybrid ARIMA and neural
       network model. Neurocomputing 50:159-175 (2003).

    Examples
    --------
    >>> from sciamba.datasets import load_sunspots
    >>> y = load_sunspots(freq="monthly")
    >>> y.sizes["time"], str(y.time.values[0])[:7], y.attrs["fs"]
    (3126, '1749-01', 12.0)
    >>> load_sunspots(as_numpy=True)[:3]
    array([ 5., 11., 16.])
    """
    _check_flag("as_numpy", as_numpy)
    if freq not in ("yearly", "monthly"):
        raise ValueError(f"freq must be 'yearly' or 'monthly', got {freq!r}")
    key = f"sunspots_{freq}"
    header, rows = _read_csv_gz(shipped_path(key))
    if freq == "yearly":
        years = np.array([int(float(r[0])) for r in rows])
        time = (years - 1970).astype("datetime64[Y]").astype("datetime64[ns]")
        fs, alias, label = 1.0, "YS", "yearly mean"
    else:
        months = np.array([(int(r[0]) - 1970) * 12 + int(r[1]) - 1 for r in rows])
        time = months.astype("datetime64[M]").astype("datetime64[ns]")
        fs, alias, label = 12.0, "MS", "monthly mean"
    values = np.array([float(r[-1]) for r in rows], dtype=np.float64)
    if as_numpy:
        return values
    return xr.DataArray(
        values,
        dims=("time",),
        coords={"time": ("time", time, {"long_name": "start of the averaging period"})},
        name="sunspot_number",
        attrs={
            "long_name": f"{label} Wolf sunspot number (version 1)",
            "units": "1",
            "fs": fs,
            "fs_units": "1/year",
            "freq": alias,
            **provenance_attrs(key),
        },
    )


def _time_seconds(n: int, fs: float) -> tuple[np.ndarray, dict]:
    return np.arange(n) / fs, {"units": "s", "long_name": "time since the start of the excerpt"}


def load_ecg_mitdb208(*, as_numpy: bool = False) -> xr.DataArray | np.ndarray:
    """Five minutes of ECG from MIT-BIH Arrhythmia Database record 208.

    Lead MLII, 360 Hz, 108,000 samples (19:35 to 24:35 of the record), the
    excerpt behind :func:`scipy.datasets.electrocardiogram`. Normal sinus
    rhythm at the start, premature ventricular contractions from about
    t = 16 s, large artefacts around t = 207-215 s, 60 Hz mains noise.
    No beat labels are included.

    Parameters
    ----------
    as_numpy : bool, default False
        Return a 1-D float64 array (mV) instead of a DataArray.

    Returns
    -------
    DataArray or ndarray, shape (108000,)
        Named ``"ecg"``, float64 millivolts (``(adc - 1024) / 200``), dims
        ``("time",)``; ``time`` in seconds from the excerpt start
        (``time.attrs["units"] == "s"``). ``attrs``: ``fs`` (360.0 Hz),
        ``units``, ``lead``, ``record``, ``source``, ``license`` (ODC-By 1.0),
        ``citation``.

    References
    ----------
    .. [1] Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database.
       IEEE Eng Med Biol 20(3):45-50 (2001).
    .. [2] Goldberger AL et al. PhysioBank, PhysioToolkit, and PhysioNet.
       Circulation 101(23):e215-e220 (2000).

    Examples
    --------
    >>> from sciamba.datasets import load_ecg_mitdb208
    >>> ecg = load_ecg_mitdb208()
    >>> ecg.shape, ecg.attrs["fs"], ecg.attrs["units"]
    ((108000,), 360.0, 'mV')
    >>> round(float(ecg.mean()), 5), round(float(ecg.std()), 5)
    (-0.16511, 0.59925)
    """
    _check_flag("as_numpy", as_numpy)
    with np.load(shipped_path("mitdb208"), allow_pickle=False) as npz:
        adc = npz["ecg"]
    values = (adc.astype(np.float64) - 1024.0) / 200.0
    if as_numpy:
        return values
    t, tattrs = _time_seconds(values.size, _ECG_FS)
    return xr.DataArray(
        values,
        dims=("time",),
        coords={"time": ("time", t, tattrs)},
        name="ecg",
        attrs={
            "long_name": "ECG, lead MLII",
            "units": "mV",
            "fs": _ECG_FS,
            "fs_units": "Hz",
            "lead": "MLII",
            "record": "mitdb/208, 19:35-24:35",
            **provenance_attrs("mitdb208"),
        },
    )


def load_mitdb_record100(
    beats: bool = False,
    *,
    pre: float = 0.25,
    post: float = 0.45,
    return_X_y: bool = False,
    as_numpy: bool = False,
) -> xr.Dataset | tuple[np.ndarray, ...]:
    """MIT-BIH Arrhythmia Database record 100: 2 leads, 30 min, 360 Hz, beat labels.

    The full record (650,000 samples of leads MLII and V5) with its 2,274
    reference annotations: 2,239 normal beats ``N``, 33 atrial premature
    beats ``A``, 1 premature ventricular contraction ``V`` and 1 rhythm
    marker ``+``.

    Parameters
    ----------
    beats : bool, default False
        If True, return the 2,273 annotated beats cut into fixed windows
        around their R peaks (for beat classification) instead of the
        continuous record.
    pre, post : float, default 0.25, 0.45
        Beat window in seconds before and after the annotated R peak (only
        with ``beats=True``). Beat ``k`` at sample ``r_k`` is
        ``signal[:, r_k - round(pre*fs) : r_k + round(post*fs)]``: with the
        defaults 90 + 162 = 252 samples (0.7 s), covering the P wave, the
        QRS complex and the T wave at normal heart rates. Beats whose window
        leaves the record are dropped (with the defaults the first and the
        last beat, leaving 2,271 of the 2,273). The window is not
        baseline-corrected or normalised.
    return_X_y : bool, default False
        With ``beats=True``, return ``(X, y)``: ``X`` float64 of shape
        ``(n_beats, 2, window)`` in mV (leads MLII, V5; time last) and ``y``
        the annotation symbols (``"N"``, ``"A"``, ``"V"``; dtype ``<U1``).
    as_numpy : bool, default False
        With ``beats=False``, return ``(signal, ann_sample, ann_symbol)``:
        ``signal`` float64 ``(2, 650000)`` in mV, the annotation sample
        indices (int64) and symbols.

    Returns
    -------
    Dataset or tuple of ndarray
        ``beats=False``: variable ``ecg`` (``lead``, ``time``) in mV; ``time``
        in seconds (float64, ``time.attrs["units"] == "s"``); annotations
        along dim ``annotation``: ``ann_sample`` (int64), ``ann_time`` (s),
        ``ann_symbol``, ``ann_aux_note``.
        ``beats=True``: variable ``beats`` (``beat``, ``lead``, ``offset``)
        with ``offset`` the time from the R peak in seconds, ``label``
        (``beat``), ``r_sample`` and ``r_time`` (``beat``).
        ``attrs``: ``fs`` (360.0 Hz), ``units`` (mV), ``source``, ``license``
        (ODC-By 1.0), ``citation``.

    See Also
    --------
    read_wfdb : read any WFDB record (this loader's data come from ``100.dat``).
    make_ecg : synthetic ECG with the same beat-window layout.

    References
    ----------
    .. [1] Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database.
       IEEE Eng Med Biol 20(3):45-50 (2001).
    .. [2] Goldberger AL et al. PhysioBank, PhysioToolkit, and PhysioNet.
       Circulation 101(23):e215-e220 (2000).

    Examples
    --------
    >>> from sciamba.datasets import load_mitdb_record100
    >>> ds = load_mitdb_record100()
    >>> ds["ecg"].shape, ds.lead.values.tolist()
    ((2, 650000), ['MLII', 'V5'])
    >>> X, y = load_mitdb_record100(beats=True, return_X_y=True)
    >>> X.shape, sorted(set(y.tolist()))
    ((2271, 2, 252), ['A', 'N', 'V'])
    """
    for name, flag in (("beats", beats), ("return_X_y", return_X_y), ("as_numpy", as_numpy)):
        _check_flag(name, flag)
    if return_X_y and not beats:
        raise ValueError(
            "return_X_y=True needs beats=True (the continuous record has no target); "
            "use as_numpy=True for plain arrays of the record"
        )
    if as_numpy and beats:
        raise ValueError("as_numpy applies to beats=False; with beats=True use return_X_y=True")
    with np.load(shipped_path("mitdb100"), allow_pickle=False) as npz:
        d = {k: npz[k] for k in npz.files}
    fs = float(d["fs"])
    signal = (d["adc"].astype(np.float64) - d["baseline"][:, None]) / d["adc_gain"][:, None]
    leads = [str(s) for s in d["sig_name"]]
    attrs = {
        "long_name": "ECG",
        "units": "mV",
        "fs": fs,
        "fs_units": "Hz",
        "record": "mitdb/100",
        **provenance_attrs("mitdb100"),
    }
    if not beats:
        if as_numpy:
            return signal, d["ann_sample"], d["ann_symbol"]
        t, tattrs = _time_seconds(signal.shape[1], fs)
        tattrs["long_name"] = "time since the start of the record"
        return xr.Dataset(
            {
                "ecg": (("lead", "time"), signal, {"units": "mV"}),
                "ann_sample": ("annotation", d["ann_sample"]),
                "ann_time": ("annotation", d["ann_sample"] / fs, {"units": "s"}),
                "ann_symbol": ("annotation", d["ann_symbol"]),
                "ann_aux_note": ("annotation", d["ann_aux_note"]),
            },
            coords={"lead": ("lead", leads), "time": ("time", t, tattrs)},
            attrs=attrs,
        )
    is_beat = np.isin(d["ann_symbol"], sorted(BEAT_SYMBOLS))
    X, y, kept = segment_beats(
        signal, d["ann_sample"][is_beat], d["ann_symbol"][is_beat], fs, pre, post
    )
    if return_X_y:
        return X, y
    r = d["ann_sample"][is_beat][kept]
    n_pre, n_post = window_samples(fs, pre, post)
    offset = np.arange(-n_pre, n_post) / fs
    return xr.Dataset(
        {
            "beats": (("beat", "lead", "offset"), X, {"units": "mV"}),
            "label": ("beat", y),
            "r_sample": ("beat", r),
            "r_time": ("beat", r / fs, {"units": "s"}),
        },
        coords={
            "lead": ("lead", leads),
            "offset": ("offset", offset, {"units": "s", "long_name": "time from the R peak"}),
        },
        attrs={**attrs, "window_pre_s": float(pre), "window_post_s": float(post)},
    )


def load_kepler_hatp7(*, as_numpy: bool = False) -> xr.Dataset | tuple[np.ndarray, ...]:
    """Kepler short-cadence light curve of HAT-P-7 (KIC 10666592), Quarter 0.

    14,280 cadences of 58.85 s over 9.73 days with the transits of the hot
    Jupiter HAT-P-7 b (period about 2.2047 d, depth about 0.64 %).

    Parameters
    ----------
    as_numpy : bool, default False
        Return ``(time, pdcsap_flux, pdcsap_flux_err, quality)`` arrays.

    Returns
    -------
    Dataset or tuple of ndarray
        Dim ``time``; coordinate ``time`` float64 in days, BKJD =
        BJD - 2454833 (``time.attrs["units"] == "d"``). Variables (float32,
        e-/s, exactly as in the mission FITS file): ``sap_flux``,
        ``sap_flux_err`` (simple aperture photometry), ``pdcsap_flux``,
        ``pdcsap_flux_err`` (systematics-corrected); int32 ``quality``
        (``SAP_QUALITY`` bit flags, 0 = good) and ``cadenceno``.
        ``attrs``: ``fs`` (cadences per day), ``cadence_s``, ``object``,
        ``target_id`` (the Kepler ID), ``source``, ``license`` (public domain), ``citation``.

    Notes
    -----
    Missing flux is NaN (46 PDCSAP values); 1,077 cadences have non-zero
    quality flags. Nothing is removed: select good cadences with
    ``ds.where((ds.quality == 0) & ds.pdcsap_flux.notnull(), drop=True)``
    (13,203 cadences).

    See Also
    --------
    read_lightcurve : read other Kepler/TESS files (same layout as this loader).

    References
    ----------
    .. [1] Borucki WJ et al. Kepler planet-detection mission: introduction and
       first results. Science 327:977 (2010).

    Examples
    --------
    >>> from sciamba.datasets import load_kepler_hatp7
    >>> ds = load_kepler_hatp7()
    >>> ds.sizes["time"], ds.time.attrs["units"], ds.pdcsap_flux.dtype
    (14280, 'd', dtype('float32'))
    >>> good = ds.where((ds.quality == 0) & ds.pdcsap_flux.notnull(), drop=True)
    >>> good.sizes["time"]
    13203
    """
    _check_flag("as_numpy", as_numpy)
    with np.load(shipped_path("kepler_hatp7"), allow_pickle=False) as npz:
        d = {k: npz[k] for k in npz.files}
    if as_numpy:
        return d["time"], d["pdcsap_flux"], d["pdcsap_flux_err"], d["quality"]
    columns = {k: d[k] for k in (*FLUX_COLUMNS, "quality", "cadenceno")}
    return lightcurve_dataset(
        d["time"],
        columns,
        {"long_name": "BKJD = BJD - 2454833 (TDB)"},
        {
            "mission": "Kepler",
            "object": str(d["object"]),
            "target_id": int(d["keplerid"]),
            "time_offset": 2454833.0,
            "ra_deg": float(d["ra"]),
            "dec_deg": float(d["dec"]),
            "quarter": 0,
            **provenance_attrs("kepler_hatp7"),
        },
    )


def load_macho(*, as_numpy: bool = False) -> xr.Dataset | dict[tuple[str, str], np.ndarray]:
    """Irregularly sampled two-band light curves of 10 MACHO stars.

    15,118 observations from 1992-1999 (MJD 48823-51546) of 10 stars (9 in
    the Large Magellanic Cloud, one in the Galactic bulge) in the MACHO
    blue (``B``) and red (``R``) bands, with gaps of days to months.
    Star ``1.4418.1930`` has R only. No class labels are shipped.

    Parameters
    ----------
    as_numpy : bool, default False
        Return a dict mapping ``(star, band)`` to a float64 array of shape
        ``(3, n_obs)`` with rows time (MJD), magnitude, error (time last).

    Returns
    -------
    Dataset or dict
        Long format along dim ``obs``: coordinates ``time`` (float64 MJD,
        ``time.attrs["units"] == "d"``), ``star`` and ``band``; variables
        ``mag`` and ``err`` (MACHO instrumental magnitudes, negative
        numbers). Per-star ``ra`` (hours) and ``dec`` (degrees) along dim
        ``star_id``. Observations are ordered by star, then band (B, R), then
        as in the source files. ``attrs``: ``source``, ``license`` (public
        domain), ``citation`` (the MACHO acknowledgement).

    Examples
    --------
    >>> from sciamba.datasets import load_macho
    >>> ds = load_macho()
    >>> ds.sizes["obs"], ds.sizes["star_id"]
    (15118, 10)
    >>> one = ds.where((ds.star == "1.3444.614") & (ds.band == "R"), drop=True)
    >>> one.sizes["obs"]
    722
    >>> curves = load_macho(as_numpy=True)
    >>> curves["1.3444.614", "R"].shape
    (3, 722)
    """
    _check_flag("as_numpy", as_numpy)
    with np.load(shipped_path("macho"), allow_pickle=False) as npz:
        d = {k: npz[k] for k in npz.files}
    if as_numpy:
        out = {}
        for star in d["star_ids"]:
            for band in ("B", "R"):
                sel = (d["star"] == star) & (d["band"] == band)
                if sel.any():
                    out[str(star), band] = np.stack([d["time"][sel], d["mag"][sel], d["err"][sel]])
        return out
    return xr.Dataset(
        {
            "mag": ("obs", d["mag"], {"units": "mag", "long_name": "MACHO instrumental magnitude"}),
            "err": ("obs", d["err"], {"units": "mag", "long_name": "magnitude error (1 sigma)"}),
            "ra": ("star_id", d["ra_hours"], {"units": "hourangle"}),
            "dec": ("star_id", d["dec_deg"], {"units": "deg"}),
        },
        coords={
            "time": ("obs", d["time"], {"units": "d", "long_name": "MJD"}),
            "star": ("obs", d["star"]),
            "band": ("obs", d["band"]),
            "star_id": ("star_id", d["star_ids"]),
        },
        attrs={"units": "mag", **provenance_attrs("macho")},
    )
