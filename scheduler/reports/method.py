"""How the savings report counts, in Markdown: the OpenAPI description of the report route.

Kept next to the code it describes (``savings``, ``aggregate``, ``sci``) so a change to a
formula or a default changes its description in the same commit. The README's Accounting
section says the same for people reading the repository.
"""

from __future__ import annotations

from scheduler.reports.sci import (
    CPU_CORE_EMBODIED_G_PER_HOUR,
    GPU_EMBODIED_G_PER_HOUR,
    LIFETIME_YEARS,
    NODE_CORES,
    UNITS_PER_R,
    UTILISATION,
)

METHOD_MARKDOWN = f"""\
The savings report (non-admins: their own tenant only). One grouping per request with
`group_by`, besides `by_tenant`, `by_region` and `by_period` (kept for old clients).

**Method.** Location-based Scope 2 (GHG Protocol) for operational emissions; the Software
Carbon Intensity terms of the Green Software Foundation (ISO/IEC 21031:2024),
SCI = (E x I + M) per R.

- *Operational* `emissions_g` (= `operational_g`) = sum over each energy report of
  energy (kWh) x the PUE of the region it ran in x the grid zone's **actual** intensity
  (g/kWh) over that report's interval, at the provider's native resolution. Where actuals are
  missing the forecast is used, else the last known value; such figures carry
  `intensity_source` `forecast` or `extrapolated`.
- *Baseline* `baseline_g`: the same energy profile started at submit time in the home
  region (its zone, its PUE). `saved_g` = baseline - emissions (negative when worse);
  `saved_pct` = 100 x saved / baseline (null for a 0 g baseline), from the group's sums.
- *Energy*: `energy_kwh` = `measured_kwh` (NVML, RAPL) + `estimated_kwh` (configured power
  x time, where no meter was available).
- *Embodied* `embodied_g` (SCI's M) = run time (h, start to finish; to now while running)
  x (GPUs x {GPU_EMBODIED_G_PER_HOUR:.2f} g/GPU-h + cores x
  {CPU_CORE_EMBODIED_G_PER_HOUR:.3f} g/core-h). Defaults from Luccioni, Viguier and Ligozat,
  "Estimating the Carbon Footprint of BLOOM" (JMLR 24, 2023; arXiv:2211.02001) sec. 4.1:
  150 kgCO2e per A100 GPU, 2,500 kgCO2e per server node without GPUs spread over
  {NODE_CORES} cores, a {LIFETIME_YEARS:g}-year life at {UTILISATION:.0%} use. The service
  config sets other factors for every region (`[embodied]`: `gpu_g_per_hour`,
  `cpu_core_g_per_hour`) and per region (`embodied_gpu_g_per_hour`,
  `embodied_cpu_core_g_per_hour`); each job is charged those of the region it ran in.
- *R*, the functional unit: {UNITS_PER_R:,.0f} training steps (training jobs) or
  {UNITS_PER_R:,.0f} requests served (deployments), as the job's worker counts them
  (`workers.units`) and its runner posts them (`POST /v1/jobs/{{id}}/progress`; a later
  attempt's total replaces an earlier one's). `functional_units` and `functional_unit`
  (`steps`, `requests`) are the count; `sci_g_per_r` = (`emissions_g` + `embodied_g`) /
  (`functional_units` / {UNITS_PER_R:,.0f}). For requests also `energy_kwh_per_1k_requests`
  (metered kWh, before PUE) and `emissions_g_per_1k_requests` (operational g). All null
  without a positive count; for a group, null unless every job in it reported a count and all
  in one unit (steps and requests do not add up; some jobs' units under all jobs' emissions
  would flatter the group).
- *Delay* = start - submit: `mean_delay_s`, `p95_delay_s` (nearest rank). *Deadline misses*:
  jobs that finished after their effective deadline (`deadline`, else submit +
  `max_delay_s` + expected duration). *Moved in time*: share of jobs that started more than
  one planning step (`step_s`) after submit; *moved in space*: share that ran outside their
  home region.
- *Relocated deployments*: each copy's (attempt's) energy is priced in the region that copy ran
  in; `relocations` (completed moves) and `relocation_expected_saving_g` (the saving the moves
  were expected to make when decided) per job, per group and in total. *Packing*
  (`packing`): GPUs powered with and without packing shared-GPU deployments, the GPU-hours
  saved credited at `[power] idle_gpu_w` and priced like a job's energy.

**Scale.** Up to 2,000 counted jobs each job is priced on its own and listed in `jobs`. Above,
the database sums energy per hour drawn and per hour it would have been drawn at home; each
report interval is attributed to the hour it starts in, a period to the hour energy was drawn
(not the day the job started), `jobs` is empty and `p95_delay_s` is null (SQLite has no
percentile aggregate). Every other figure is the same either way.

**Filters** (`tenant`, `region`, `group_id`, `from`, `to`) are echoed in every format: JSON
`filters`, the text and HTML headers, and the CSV's last column `filters`.
"""
