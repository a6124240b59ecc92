"""The simulator: replays job traces against carbon traces through the service's planning cycle.

``scheduler.simulation.cli.run_simulation`` is the entry point; ``engine.simulate`` replays one
policy over a ``scenario.Scenario``; ``metrics`` accounts on actuals; ``results`` renders.
"""
