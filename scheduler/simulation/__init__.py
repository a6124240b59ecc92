"""The simulator: replays job traces against carbon traces through the service's planning cycle.

``scheduler.simulation.cli.run_simulation`` is the entry point; ``inputs`` turns files and
options into a ``scenario.Scenario`` (``job_readers`` and ``carbon_traces`` read the files,
``placement`` chooses the jobs and their dates, ``trace_input`` refuses what cannot be used);
``engine.simulate`` replays one policy over a scenario; ``metrics`` accounts on actuals;
``results`` renders.
"""
