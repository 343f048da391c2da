"""Reader for PhysioNet WFDB records, through the ``wfdb`` package."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from ._optional import import_optional

__all__ = ["read_wfdb"]

_WFDB_SUFFIXES = (".hea", ".dat")


def read_wfdb(
    record_path: str | os.PathLike,
    *,
    annotator: str | None = "atr",
    channels: Sequence[int] | None = None,
    sampfrom: int = 0,
    sampto: int | None = None,
) -> xr.Dataset:
    """Read a PhysioNet WFDB record and its annotations into a Dataset.

    A thin layer over :func:`wfdb.rdrecord` and :func:`wfdb.rdann` (optional
    extra ``medical``) that labels the result: channel names, physical units,
    a time axis in seconds, and the annotations as arrays.

    Parameters
    ----------
    record_path : str or path-like
        The record without extension (``".../mitdb/100"``); a trailing
        ``.hea`` or ``.dat`` is removed.
    annotator : str or None, default "atr"
        Annotation file extension to read (``"atr"`` for reference beat
        labels). Skipped when ``None`` or when ``<record>.<annotator>`` does
        not exist.
    channels : sequence of int, optional
        Channel indices to read (default: all).
    sampfrom, sampto : int, optional
        Sample range ``[sampfrom, sampto)`` to read (default: all).

    Returns
    -------
    Dataset
        ``signal`` (``channel``, ``time``), float64 in physical units, time
        last; coordinates ``channel`` (signal names), ``channel_units``
        (``channel``) and ``time`` in seconds from the record start (float64,
        ``time.attrs["units"] == "s"``). With annotations, along dim
        ``annotation``: ``ann_sample`` (int64, absolute sample index),
        ``ann_time`` (s), ``ann_symbol``, ``ann_aux_note``, ``ann_subtype``,
        ``ann_chan``, ``ann_num``. ``attrs``: ``fs`` (Hz), ``record``,
        ``comments`` and, where the header has them, ``base_date`` and
        ``base_time``.

    Raises
    ------
    ImportError
        If ``wfdb`` is not installed (``pip install 'sciamba[medical]'``).
    FileNotFoundError
        If ``<record_path>.hea`` does not exist.
    ValueError
        For an empty or inverted sample range.

    See Also
    --------
    fetch_physionet : download a record from PhysioNet first.
    load_mitdb_record100 : MIT-BIH record 100, shipped with sciamba.

    References
    ----------
    .. [1] Xie C, McCullum L, Johnson A, Pollard T, Gow B, Moody B. Waveform
       Database Software Package (WFDB) for Python (version 4.1.0).
       PhysioNet (2023), doi:10.13026/9njx-6322.

    Examples
    --------
    Write a two-channel record with :func:`wfdb.wrsamp` and read it back:

    >>> import tempfile
    >>> import numpy as np
    >>> import wfdb
    >>> from sciamba.datasets import read_wfdb
    >>> folder = tempfile.mkdtemp()
    >>> sig = np.column_stack([np.sin(np.arange(500) / 20), np.cos(np.arange(500) / 20)])
    >>> wfdb.wrsamp("demo", fs=250, units=["mV", "mV"], sig_name=["I", "II"],
    ...             p_signal=sig, fmt=["16", "16"], write_dir=folder)
    >>> wfdb.wrann("demo", "atr", np.array([100, 350]), symbol=["N", "V"], write_dir=folder)
    >>> ds = read_wfdb(f"{folder}/demo")
    >>> ds["signal"].shape, ds.channel.values.tolist(), ds.attrs["fs"]
    ((2, 500), ['I', 'II'], 250.0)
    >>> ds.ann_symbol.values.tolist(), ds.ann_time.values.tolist()
    (['N', 'V'], [0.4, 1.4])
    """
    wfdb = import_optional("wfdb", "medical", "read_wfdb")
    path = Path(record_path).expanduser()
    if path.suffix in _WFDB_SUFFIXES:
        path = path.with_suffix("")
    header = path.with_name(path.name + ".hea")
    if not header.is_file():
        raise FileNotFoundError(
            f"WFDB header {header} not found; pass the record path without extension "
            "(e.g. '.../mitdb/100'), or download it with fetch_physionet"
        )
    if sampfrom < 0 or (sampto is not None and sampto <= sampfrom):
        raise ValueError(f"need 0 <= sampfrom < sampto, got sampfrom={sampfrom}, sampto={sampto}")
    rec = wfdb.rdrecord(
        os.fspath(path),
        sampfrom=sampfrom,
        sampto=sampto,
        channels=None if channels is None else list(channels),
        physical=True,
        return_res=64,
    )
    fs = float(rec.fs)
    signal = np.ascontiguousarray(np.asarray(rec.p_signal, dtype=np.float64).T)  # (channel, time)
    t = (sampfrom + np.arange(signal.shape[1])) / fs
    attrs: dict[str, object] = {
        "fs": fs,
        "fs_units": "Hz",
        "record": rec.record_name,
        "comments": "\n".join(rec.comments or []),
    }
    if rec.base_date is not None:
        attrs["base_date"] = rec.base_date.isoformat()
    if rec.base_time is not None:
        attrs["base_time"] = rec.base_time.isoformat()
    data_vars: dict[str, tuple] = {"signal": (("channel", "time"), signal)}
    ann_file = path.with_name(f"{path.name}.{annotator}") if annotator else None
    if ann_file is not None and ann_file.is_file():
        ann = wfdb.rdann(os.fspath(path), annotator, sampfrom=sampfrom, sampto=sampto)
        sample = np.asarray(ann.sample, dtype=np.int64)
        data_vars.update(
            ann_sample=("annotation", sample),
            ann_time=("annotation", sample / fs, {"units": "s"}),
            ann_symbol=("annotation", np.asarray(ann.symbol, dtype=str)),
            # WFDB pads aux notes with NUL bytes.
            ann_aux_note=(
                "annotation",
                np.asarray([a.rstrip("\x00") for a in ann.aux_note], dtype=str),
            ),
            ann_subtype=("annotation", np.asarray(ann.subtype, dtype=np.int64)),
            ann_chan=("annotation", np.asarray(ann.chan, dtype=np.int64)),
            ann_num=("annotation", np.asarray(ann.num, dtype=np.int64)),
        )
        attrs["annotator"] = annotator
    return xr.Dataset(
        data_vars,
        coords={
            "channel": ("channel", list(rec.sig_name)),
            "channel_units": ("channel", list(rec.units)),
            "time": ("time", t, {"units": "s", "long_name": "time since the record start"}),
        },
        attrs=attrs,
    )
