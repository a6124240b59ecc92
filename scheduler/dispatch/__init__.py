"""Dispatch adapters: run jobs on Ray clusters through the Ray Jobs API.

``ray_jobs.RayDispatcher`` implements the ``Dispatcher`` port; ``local_ray.LocalRayHead`` starts
the private loopback Ray head of the embedded default.
"""
