"""Reader for Kepler, K2 and TESS light-curve FITS files, through ``astropy.io.fits``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from ._optional import import_optional

__all__ = ["read_lightcurve"]

FLUX_COLUMNS = ("sap_flux", "sap_flux_err", "pdcsap_flux", "pdcsap_flux_err")


def lightcurve_dataset(
    time: np.ndarray,
    columns: dict[str, np.ndarray],
    time_attrs: dict[str, str],
    attrs: dict[str, object],
) -> xr.Dataset:
    """The Dataset layout shared by :func:`read_lightcurve` and :func:`load_kepler_hatp7`.

    ``columns`` holds the four flux columns of :data:`FLUX_COLUMNS` (e-/s),
    ``quality`` and ``cadenceno``, all indexed like ``time`` (days).
    """
    cadence_d = float(np.nanmedian(np.diff(time))) if time.size > 1 else float("nan")
    data_vars = {name: ("time", columns[name], {"units": "e-/s"}) for name in FLUX_COLUMNS}
    data_vars["quality"] = (
        "time",
        columns["quality"],
        {"long_name": "quality bit flags, 0 = good"},
    )
    data_vars["cadenceno"] = ("time", columns["cadenceno"])
    return xr.Dataset(
        data_vars,
        coords={"time": ("time", time, {"units": "d", **time_attrs})},
        attrs={
            "units": "e-/s",
            "fs": 1.0 / cadence_d,
            "fs_units": "1/d",
            "cadence_s": cadence_d * 86400.0,
            **attrs,
        },
    )


def read_lightcurve(path: str | os.PathLike, *, quality_bitmask: int = 0) -> xr.Dataset:
    """Read a Kepler/K2/TESS light-curve FITS file (``LIGHTCURVE`` extension).

    Uses :mod:`astropy.io.fits` (optional extra ``astro``). Reads the
    mission pipeline's simple aperture photometry (SAP) and the
    systematics-corrected PDCSAP flux with their errors, the quality flags
    and the cadence numbers.

    Parameters
    ----------
    path : str or path-like
        A ``*_llc.fits``/``*_slc.fits`` (Kepler, K2) or ``*_lc.fits`` (TESS)
        file.
    quality_bitmask : int, default 0
        Cadences whose quality flags share a bit with this mask get ``NaN``
        flux and flux errors (they stay in the time axis, so the cadence
        remains regular). 0 masks nothing; ``-1`` masks every flagged
        cadence.

    Returns
    -------
    Dataset
        Dim ``time``; coordinate ``time`` float64 in days, with the
        mission's offset (``time.attrs["long_name"]``, e.g. ``BJD - 2454833``
        for Kepler, ``BJD - 2457000`` for TESS; ``attrs["time_offset"]`` is
        the offset in days). Variables ``sap_flux``, ``sap_flux_err``,
        ``pdcsap_flux``, ``pdcsap_flux_err`` (file dtype, e-/s),
        ``quality`` (``SAP_QUALITY`` for Kepler, ``QUALITY`` for TESS) and
        ``cadenceno``. ``attrs``: ``fs`` (cadences per day), ``cadence_s``,
        ``mission``, ``object``, ``target_id``, ``n_nan_time_dropped``,
        ``quality_bitmask``.

    Raises
    ------
    ImportError
        If astropy is not installed (``pip install 'sciamba[astro]'``).
    ValueError
        If the file has no ``LIGHTCURVE`` extension or lacks a column.

    Notes
    -----
    Missing flux: the pipelines write ``NaN`` where no flux could be measured
    (e.g. during momentum dumps or safe modes); these stay ``NaN``. Cadences
    whose *time* is ``NaN`` (TESS writes these when the spacecraft pointing
    is unknown) are dropped, because a time coordinate cannot hold ``NaN``;
    their number is in ``attrs["n_nan_time_dropped"]``.

    References
    ----------
    .. [1] Thompson SE et al. Kepler Archive Manual, KDMC-10008-006 (2016).
    .. [2] Twicken JD et al. TESS Science Data Products Description Document,
       EXP-TESS-ARC-ICD-0014 (2018).

    Examples
    --------
    A minimal TESS-style file written with :mod:`astropy.io.fits`:

    >>> import tempfile
    >>> import numpy as np
    >>> from astropy.io import fits
    >>> from sciamba.datasets import read_lightcurve
    >>> n = 6
    >>> cols = [fits.Column(name="TIME", format="D", unit="BJD - 2457000, days",
    ...                     array=1500 + np.arange(n) / 720)]
    >>> cols += [fits.Column(name=c, format="E", array=np.full(n, 100.0))
    ...          for c in ("SAP_FLUX", "SAP_FLUX_ERR", "PDCSAP_FLUX", "PDCSAP_FLUX_ERR")]
    >>> cols += [fits.Column(name="QUALITY", format="J", array=[0, 0, 8, 0, 0, 0]),
    ...          fits.Column(name="CADENCENO", format="J", array=np.arange(n))]
    >>> path = f"{tempfile.mkdtemp()}/lc.fits"
    >>> fits.HDUList([fits.PrimaryHDU(),
    ...               fits.BinTableHDU.from_columns(cols, name="LIGHTCURVE")]).writeto(path)
    >>> ds = read_lightcurve(path, quality_bitmask=8)
    >>> ds.sizes["time"], round(ds.attrs["cadence_s"], 3)
    (6, 120.0)
    >>> ds.pdcsap_flux.values.tolist()
    [100.0, 100.0, nan, 100.0, 100.0, 100.0]
    """
    fits = import_optional("astropy.io.fits", "astro", "read_lightcurve")
    if isinstance(quality_bitmask, bool) or not isinstance(quality_bitmask, (int, np.integer)):
        raise TypeError(f"quality_bitmask must be an int, got {quality_bitmask!r}")
    path = Path(path).expanduser()
    with fits.open(path, memmap=False) as hdul:
        names = [h.name for h in hdul]
        if "LIGHTCURVE" not in names:
            raise ValueError(
                f"{path}: no LIGHTCURVE extension (found {names}); is this a Kepler/K2/TESS "
                "light-curve file (not a target pixel file)?"
            )
        primary, hdu = hdul[0].header, hdul["LIGHTCURVE"]
        table = hdu.data
        available = {c.upper() for c in table.columns.names}
        quality_col = "SAP_QUALITY" if "SAP_QUALITY" in available else "QUALITY"
        wanted = ["TIME", "CADENCENO", quality_col] + [c.upper() for c in FLUX_COLUMNS]
        missing = [c for c in wanted if c not in available]
        if missing:
            raise ValueError(f"{path}: LIGHTCURVE extension lacks columns {missing}")
        time = np.asarray(table["TIME"], dtype=np.float64)
        good_time = np.isfinite(time)
        # FITS stores big-endian numbers; convert to native byte order.
        columns = {
            name: np.asarray(table[name.upper()])[good_time].astype(
                table[name.upper()].dtype.newbyteorder("=")
            )
            for name in FLUX_COLUMNS
        }
        columns["quality"] = np.asarray(table[quality_col], dtype=np.int32)[good_time]
        columns["cadenceno"] = np.asarray(table["CADENCENO"], dtype=np.int32)[good_time]
        time_unit = table.columns["TIME"].unit or "d"
        hdr = hdu.header
        offset = float(hdr.get("BJDREFI", 0)) + float(hdr.get("BJDREFF", 0.0))
        mission = str(primary.get("MISSION", primary.get("TELESCOP", "unknown")))
        target = primary.get("KEPLERID", primary.get("TICID"))
        attrs = {
            "mission": mission,
            "object": str(primary.get("OBJECT", "")),
            "target_id": int(target) if target is not None else -1,
            "time_offset": offset,
            "n_nan_time_dropped": int((~good_time).sum()),
            "quality_bitmask": int(quality_bitmask),
            "source": os.fspath(path),
        }
    if quality_bitmask:
        bad = (columns["quality"] & np.int32(quality_bitmask)) != 0
        for name in FLUX_COLUMNS:
            columns[name] = np.where(bad, np.nan, columns[name]).astype(columns[name].dtype)
    return lightcurve_dataset(time[good_time], columns, {"long_name": f"{time_unit} (TDB)"}, attrs)
