"""scikit-learn estimators around Mamba (``sciamba.estimators``).

=========================  ===================================================
:class:`MambaForecaster`   series -> their next ``horizon`` values (point or
                           quantile forecasts), one global model
:class:`MambaClassifier`   series -> class label (bidirectional Mamba)
:class:`MambaRegressor`    series -> scalar or vector target
=========================  ===================================================

All three take ``X`` with time last: a 1-D array is one series,
``(n_series, n_timesteps)`` univariate and ``(n_series, n_channels,
n_timesteps)`` multichannel collections, or an :class:`xarray.DataArray`
with a ``time`` dimension (outputs then come back as DataArrays). NaN marks
a missing value: leading NaN pad shorter series, interior NaN are gaps the
model skips in time; ``times=`` gives irregular sampling instants.
"""

from ._classifier import MambaClassifier
from ._forecaster import MambaForecaster
from ._regressor import MambaRegressor

__all__ = ["MambaClassifier", "MambaForecaster", "MambaRegressor"]
