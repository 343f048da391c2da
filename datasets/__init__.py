"""Real astronomy and medical time series, readers, fetchers and generators.

Shipped datasets (public domain or ODC-By; provenance and licences in
``datasets/data/LICENSES.md``; checksums verified at every load)
==============================  ===============================================
:func:`load_sunspots`           Wolf sunspot numbers, yearly 1700-2008 or
                                monthly 1749-2009
:func:`load_ecg_mitdb208`       5 min of MIT-BIH record 208, lead MLII, 360 Hz
:func:`load_mitdb_record100`    MIT-BIH record 100, 2 leads, 30 min, 360 Hz,
                                2,274 beat annotations; segmented beats
:func:`load_kepler_hatp7`       Kepler short-cadence light curve of HAT-P-7
:func:`load_macho`              10 MACHO stars, B and R bands, irregular
==============================  ===============================================

Readers for the field's own formats
==============================  ===============================================
:func:`read_ucr`                UCR/UEA ``.tsv``, ``.txt`` and ``.ts`` files
:func:`read_wfdb`               PhysioNet WFDB records (extra ``medical``)
:func:`read_lightcurve`         Kepler/K2/TESS FITS light curves (extra
                                ``astro``)
==============================  ===============================================

Fetchers (download once into ``$SCIAMBA_DATA`` or ``~/sciamba_data``)
==============================  ===============================================
:func:`fetch_ucr`               a UCR/UEA archive dataset
:func:`fetch_physionet`         a PhysioNet WFDB record, checked against the
                                database's ``SHA256SUMS.txt``
==============================  ===============================================

Generators (each takes ``random_state`` and is reproducible)
==============================  ===============================================
:func:`make_damped_oscillators` damped oscillators run as ``scipy.signal``
                                state space systems
:func:`make_light_curves`       labelled eclipsing / pulsating / transit /
                                constant light curves with survey gaps
:func:`make_ecg`                the McSharry et al. (2003) dynamical ECG model,
                                optional premature ventricular beats
==============================  ===============================================

``make_selective_copying`` (the Mamba paper's synthetic task) lives in
:mod:`sciamba.nn`.

Every loader returns an :class:`xarray.DataArray` or :class:`xarray.Dataset`
with a ``time`` coordinate (``datetime64`` for calendar data, days for
astronomy, seconds for ECG; see ``time.attrs["units"]``), the sampling rate
``attrs["fs"]`` where the sampling is regular, and ``source``, ``license``
and ``citation`` attributes. ``return_X_y=True`` (where there is a target) or
``as_numpy=True`` gives plain NumPy arrays with time as the last axis.
"""

from ._base import ChecksumError
from ._ecg_model import make_ecg
from ._fetch import DownloadError, fetch_physionet, fetch_ucr, get_data_home
from ._fits import read_lightcurve
from ._light_curves import make_light_curves
from ._loaders import (
    load_ecg_mitdb208,
    load_kepler_hatp7,
    load_macho,
    load_mitdb_record100,
    load_sunspots,
)
from ._oscillators import make_damped_oscillators
from ._ucr import read_ucr
from ._wfdb import read_wfdb

__all__ = [
    "ChecksumError",
    "load_sunspots",
    "load_ecg_mitdb208",
    "load_mitdb_record100",
    "load_kepler_hatp7",
    "load_macho",
    "read_ucr",
    "read_wfdb",
    "read_lightcurve",
    "fetch_ucr",
    "fetch_physionet",
    "get_data_home",
    "DownloadError",
    "make_damped_oscillators",
    "make_light_curves",
    "make_ecg",
]
