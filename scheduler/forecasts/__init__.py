"""Carbon-intensity providers behind :class:`scheduler.ports.ForecastProvider`.

Each vendor has two levels, as in the GSF Carbon Aware SDK: a raw HTTP client (auth, paths,
retries through :mod:`scheduler.forecasts.http`) and a provider that converts vendor units to
g/kWh and trims windows (validation in :mod:`scheduler.forecasts.validation`). ``replay`` is the
offline default over traces shipped in ``traces/``. Only ``scheduler.bootstrap`` should call
:func:`scheduler.forecasts.factory.build_provider`.
"""
