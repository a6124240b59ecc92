"""Benchmark: refresh 50 regions through the ForecastRefresher against a local provider server.

Starts the loopback server from tests/fakes/provider_server.py replaying the recorded
Electricity Maps, WattTime, UK Carbon Intensity and Carbon Aware SDK formats, builds one provider
per region (real HTTP clients), refreshes every region once (forecast + 24 h of actuals) and
prints wall time, requests/s and failures per vendor. Target: all 50 in under 2 s.

    .venv/bin/python bench/forecast_refresh.py [--regions 50] [--workers 16] [--failing 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scheduler.forecasts.carbonaware_sdk import (
    CarbonAwareSdkClient,
    CarbonAwareSdkProvider,
)
from scheduler.forecasts.electricitymaps import (
    ElectricityMapsClient,
    ElectricityMapsProvider,
)
from scheduler.forecasts.http import HttpSettings
from scheduler.forecasts.memory_store import MemoryForecastStore
from scheduler.forecasts.refresh import ForecastRefresher, RefreshStatus
from scheduler.forecasts.ukgrid import UkGridClient, UkGridProvider
from scheduler.forecasts.watttime import WattTimeClient, WattTimeProvider
from scheduler.ports import ForecastProvider
from tests.fakes.clock import FakeClock
from tests.fakes.provider_server import (
    CarbonAwareSdkFake,
    ElectricityMapsFake,
    ProviderServer,
    Reply,
    Request,
    UkGridFake,
    WattTimeFake,
)

NOW = datetime(2025, 3, 14, 3, 40, tzinfo=UTC)
TARGET_S = 2.0
HTTP = HttpSettings(
    connect_timeout_s=1.0, read_timeout_s=2.0, attempts=2, backoff_s=0.01, pool_size=4
)


@dataclass(frozen=True)
class Region:
    name: str
    vendor: str
    zone: str
    provider: ForecastProvider


def _any_zone(body: Callable[[Request], Any]) -> Callable[[Request], Reply]:
    """Serve the recorded body for whatever zone is asked (the fakes know only one)."""
    return lambda request: Reply(body=body(request))


def _serve_many_zones(server: ProviderServer, failing: set[str]) -> dict[str, Any]:
    em, wt = ElectricityMapsFake(server, NOW), WattTimeFake(server, NOW)
    uk, casdk = UkGridFake(server, NOW), CarbonAwareSdkFake(server, NOW)
    server.route(em.forecast_path, _any_zone(lambda r: dict(em.forecast, zone=r.param("zone"))))
    server.route(
        r"/v3/carbon-intensity/history", _any_zone(lambda r: dict(em.history, zone=r.param("zone")))
    )

    def watttime(body: Callable[[Request], Any]) -> Callable[[Request], Reply]:
        def serve(request: Request) -> Reply:
            if request.headers.get("authorization", "").removeprefix("Bearer ") not in wt.tokens:
                return Reply(401, {"error": "Token expired"})
            answer = body(request)
            return Reply(
                body=dict(answer, meta={**answer["meta"], "region": request.param("region")})
            )

        return serve

    server.route(wt.forecast_path, watttime(lambda r: wt.forecast))
    server.route(wt.actuals_path, watttime(lambda r: wt._historical(r).body))

    def casdk_forecast(request: Request) -> Any:
        body = casdk.forecast_body()
        return [dict(body[0], location=request.param("location"))]

    server.route(casdk.forecast_path, _any_zone(casdk_forecast))
    server.route(casdk.actuals_path, _any_zone(lambda r: casdk._bylocations(r).body))
    if failing:

        def fail(request: Request) -> Reply:
            return Reply(503, {"error": "unavailable"})

        server.route(
            r"/v3/carbon-intensity/forecast",
            lambda r: (
                fail(r)
                if r.param("zone") in failing
                else Reply(body=dict(em.forecast, zone=r.param("zone")))
            ),
        )
    return {"electricitymaps": em, "watttime": wt, "ukgrid": uk, "carbonaware_sdk": casdk}


def _regions(count: int, fakes: dict[str, Any]) -> list[Region]:
    vendors = ["electricitymaps", "watttime", "ukgrid", "carbonaware_sdk"]
    regions = []
    for index in range(count):
        vendor = vendors[index % len(vendors)]
        fake = fakes[vendor]
        if vendor == "electricitymaps":
            zone = f"EM-{index}"
            provider: ForecastProvider = ElectricityMapsProvider(
                ElectricityMapsClient(fake.api_key, fake.base_url, http_settings=HTTP)
            )
        elif vendor == "watttime":
            zone = f"BA_{index}"
            provider = WattTimeProvider(
                WattTimeClient("freddo", "the_frog", fake.base_url, http_settings=HTTP)
            )
        elif vendor == "ukgrid":
            zone = f"GB-{index % 18 + 1}"
            provider = UkGridProvider(UkGridClient(fake.base_url, http_settings=HTTP))
        else:
            zone = f"cloud-{index}"
            provider = CarbonAwareSdkProvider(
                CarbonAwareSdkClient(fake.base_url, http_settings=HTTP)
            )
        regions.append(Region(f"region-{index:02d}", vendor, zone, provider))
    return regions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=50)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument(
        "--failing",
        type=int,
        default=0,
        help="Electricity Maps zones answering 503 (exercises retries/backoff)",
    )
    args = parser.parse_args()

    with ProviderServer() as server:
        failing = {f"EM-{i * 4}" for i in range(args.failing)}
        regions = _regions(args.regions, _serve_many_zones(server, failing))
        store = MemoryForecastStore()
        refresher = ForecastRefresher(
            {r.name: (r.provider, r.zone) for r in regions},
            store,
            FakeClock(NOW),
            max_workers=args.workers,
            rate_limits={},
        )
        started = time.perf_counter()
        result = refresher.refresh()
        wall_s = time.perf_counter() - started
        requests = len(server.requests)

    by_vendor: dict[str, Counter[str]] = {}
    for region in regions:
        outcome = result.regions[region.name]
        counts = by_vendor.setdefault(region.vendor, Counter())
        counts["regions"] += 1
        counts["ok" if outcome.status is RefreshStatus.OK else "failed"] += 1
        counts["actual_points"] += outcome.actual_points

    print(f"{'vendor':<18}{'regions':>8}{'ok':>6}{'failed':>8}{'actual pts':>12}")
    for vendor, counts in by_vendor.items():
        print(
            f"{vendor:<18}{counts['regions']:>8}{counts['ok']:>6}{counts['failed']:>8}"
            f"{counts['actual_points']:>12}"
        )
    print(f"\nregions refreshed : {len(regions)} ({args.workers} workers)")
    print(f"HTTP requests     : {requests} ({result.calls} provider calls)")
    print(f"wall time         : {wall_s:.3f} s (target < {TARGET_S:.1f} s)")
    print(f"requests/s        : {requests / wall_s:.0f}")
    print(
        f"failures          : {len(result.failed)}"
        + (f" ({', '.join(result.failed[:5])}...)" if result.failed else "")
    )
    print("result            : " + ("PASS" if wall_s < TARGET_S else "SLOWER THAN TARGET"))
    return 0 if wall_s < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
