"""Simulator smoke tests on a short slice of the Azure trace and on generated load."""

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from thrifty_api import pools as contract_pools
from thrifty_operator.cost import budgets
from thrifty_sim import baselines, bench, catalog, cli, experiment, generator, oracle, scaler, simulate, trace

DATA = bench.DATA
AZURE = bench.AZURE_TRACE
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model() -> tuple[dict, catalog.CapacityModel]:
    pools = catalog.load_pools(None)
    return pools, catalog.load_capacity(None, pools)


@pytest.fixture(scope="module")
def azure_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # First 20 minutes (about 6,000 requests) of the trace.
    lines = AZURE.read_text().splitlines()
    path = tmp_path_factory.mktemp("trace") / "slice.csv"
    path.write_text("\n".join(lines[:6001]) + "\n")
    return path


def test_trace_loader_reads_azure_timestamps_with_seven_fraction_digits(azure_slice: Path) -> None:
    arrivals = trace.load_arrivals(azure_slice)
    assert len(arrivals) == 6000
    assert arrivals[0] == 0.0
    assert 1000 < arrivals[-1] < 1300
    counts = trace.per_second_counts(arrivals)
    assert counts.sum() == 6000


def test_trace_without_timestamp_column_fails_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(trace.TraceError, match="no timestamp column"):
        trace.load_arrivals(bad)
    garbled = tmp_path / "garbled.csv"
    garbled.write_text("TIMESTAMP,x\nyesterday,1\n")
    with pytest.raises(trace.TraceError, match="unusable timestamp"):
        trace.load_arrivals(garbled)


def test_cli_exits_non_zero_on_trace_without_timestamps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert cli.main(["--trace", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no timestamp column" in err


def test_generator_is_seeded_and_diurnal() -> None:
    a = generator.diurnal(1.0, 100.0, peak_to_mean=3.0, bursts_per_day=0, seed=7)
    b = generator.diurnal(1.0, 100.0, peak_to_mean=3.0, bursts_per_day=0, seed=7)
    assert np.array_equal(a, b)
    hourly = a.reshape(24, 3600).mean(axis=1)
    assert 85 < a.mean() < 115
    assert hourly.max() / hourly.mean() > 2.3
    assert hourly.argmax() == 16 or hourly.argmax() == 15


def test_sim_smoke_on_azure_slice_meets_slo_without_overrun(
    azure_slice: Path, model: tuple[dict, catalog.CapacityModel], tmp_path: Path
) -> None:
    pools, capacity = model
    counts = trace.per_second_counts(trace.load_arrivals(azure_slice), 20.0, seed=0)
    cfg = simulate.SimConfig(slo_ms=50, budget=budgets.Budget(per_hour=0.5))
    result = experiment.run_all(counts, capacity, pools, cfg)
    p = result["policies"]
    baselines_and_oracles = {"static-peak", "hpa", "keda", "oracle", "oracle-budget", "oracle-budget-bound"}
    assert set(p) == {"thrifty", *baselines_and_oracles}
    ours = p["thrifty"]
    assert ours["budget_overrun"] == 0
    assert ours["budget_overrun_windows"] == 0
    assert ours["slo_attainment"] >= 0.9
    # Thrifty runs CPU INT8 at this load: cheaper than one T4 for the whole time.
    assert ours["variant_seconds"]["onnx-int8"] > 0
    assert ours["total_cost"] < p["hpa"]["total_cost"]
    # The oracle is a lower bound on cost.
    for name in ("thrifty", "static-peak", "hpa", "keda"):
        assert p["oracle"]["total_cost"] <= p[name]["total_cost"] + 1e-9
    assert p["oracle"]["slo_attainment"] == 1.0


def test_cli_writes_results_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc = cli.main(
        ["--generate", "--days", "0.25", "--mean-rps", "150", "--budget-per-month", "300", "--out", str(out)]
    )
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    for name in ("thrifty", "static-peak", "hpa", "keda", "oracle"):
        r = results["policies"][name]
        assert {"total_cost", "budget_overrun", "slo_attainment", "scaling_actions"} <= set(r)
    assert results["policies"]["thrifty"]["budget_overrun"] == 0
    assert (out / "plot.png").stat().st_size > 10_000


def test_budget_overrun_counts_rolling_hours_and_period() -> None:
    spend = np.full(7200, 1.0 / 3600)  # 1/h for two hours
    amount, windows = simulate.rolling_overrun(spend, budgets.Budget(per_hour=0.5, per_month=1.5))
    assert windows > 0
    assert amount > 0.5
    assert simulate.rolling_overrun(spend, budgets.Budget(per_hour=1.0, per_month=2.0)) == (0.0, 0)


def test_budget_oracle_meets_no_more_windows_than_cost_oracle(
    model: tuple[dict, catalog.CapacityModel],
) -> None:
    pools, capacity = model
    counts = generator.diurnal(0.25, 300.0, seed=3)
    o1 = oracle.cheapest(counts, capacity.variants, pools, 50)
    o2 = oracle.best_within_budget(
        counts, capacity.variants, pools, 50, budgets.Budget(per_month=o1.total_cost * 0.5)
    )
    assert o2.total_cost <= o1.total_cost * 0.5 + 1e-9
    assert o2.slo_attainment < o1.slo_attainment == 1.0
    bound = oracle.budget_upper_bound(
        counts, capacity.variants, pools, 50, budgets.Budget(per_month=o1.total_cost * 0.5)
    )
    assert o2.slo_attainment <= bound.slo_attainment
    # With O1's money the budget oracle meets (nearly) every window too.
    rich = oracle.best_within_budget(
        counts, capacity.variants, pools, 50, budgets.Budget(per_month=o1.total_cost)
    )
    assert rich.slo_attainment >= 0.99
    assert rich.total_cost <= o1.total_cost + 1e-9


def test_cost_lower_bound_is_below_every_plan_at_its_attainment(
    model: tuple[dict, catalog.CapacityModel],
) -> None:
    pools, capacity = model
    counts = generator.diurnal(0.25, 1500.0, seed=4)
    o1 = oracle.cheapest(counts, capacity.variants, pools, 50)
    assert oracle.cost_lower_bound(counts, capacity.variants, pools, 50, 1.0).total_cost <= o1.total_cost
    cfg = simulate.SimConfig(slo_ms=50)
    sweep = experiment.hpa_sweep(counts, capacity, pools, cfg, targets=(0.95, 0.7, 0.4))
    # A lower utilisation target buys capacity: never cheaper, never a worse SLO here.
    assert [e["total_cost"] for e in sweep] == sorted(e["total_cost"] for e in sweep)
    assert sweep[0]["slo_attainment"] < sweep[-1]["slo_attainment"]
    bounds = []
    for e in sweep:
        bound = oracle.cost_lower_bound(counts, capacity.variants, pools, 50, e["slo_attainment"])
        assert bound.slo_attainment >= e["slo_attainment"] - 1e-9
        assert bound.total_cost <= e["total_cost"]
        bounds.append(bound.total_cost)
    assert bounds == sorted(bounds)
    for e, anyhow in zip(sweep, bounds, strict=True):
        # Fewer changes allowed never lowers the bound; the policy's own actions never exceed it.
        within = oracle.cost_lower_bound_within_actions(
            counts, capacity.variants, pools, 50, e["slo_attainment"], e["scaling_actions"]
        )
        assert anyhow - 1e-6 <= within <= e["total_cost"]
    # Meeting nothing costs the floor: one c7i node (two CPU replicas) for the whole period.
    floor = oracle.cost_lower_bound(counts, capacity.variants, pools, 50, 0.0)
    assert floor.total_cost == pytest.approx(0.1785 * len(counts) / 3600)


def test_dual_bound_never_exceeds_the_best_plan_within_the_action_limit() -> None:
    rng = np.random.default_rng(7)
    for _ in range(150):
        windows, fleets = int(rng.integers(2, 6)), int(rng.integers(1, 4))
        run_cost = rng.uniform(0.1, 1.0, fleets)
        met = (rng.uniform(size=(windows, fleets)) < 0.5).astype(np.float64)
        actions, required = int(rng.integers(0, windows)), int(rng.integers(0, windows + 1))
        best = math.inf
        for plan in itertools.product(range(fleets), repeat=windows):
            changes = sum(a != b for a, b in itertools.pairwise(plan))
            if changes <= actions and sum(met[w, f] for w, f in enumerate(plan)) >= required:
                best = min(best, float(run_cost[list(plan)].sum()))
        bound = oracle.dual_bound(run_cost, met, required, actions)
        assert math.isinf(bound) == math.isinf(best)
        assert bound <= best + 1e-9


def test_dual_bound_rises_when_actions_are_scarce() -> None:
    # A cheap fleet meets windows 0 and 2, a dear one meets all three: meeting all three costs 1+3+1
    # with two changes, and 3+3+3 with none.
    run_cost = np.array([1.0, 3.0])
    met = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    assert oracle.dual_bound(run_cost, met, 3, 2) == pytest.approx(5.0)
    assert oracle.dual_bound(run_cost, met, 3, 0) == pytest.approx(9.0)
    # One change: cheap-dear-dear or dear-dear-cheap, 7.
    assert oracle.dual_bound(run_cost, met, 3, 1) == pytest.approx(7.0)


def test_measured_capacity_profile_ships_and_loads() -> None:
    pools = catalog.load_pools(None)
    capacity = catalog.load_capacity(DATA / "capacity" / "minilm-cpu-2vcpu.json", pools)
    selected = capacity.variant(capacity.selected)
    assert selected.pool == "cpu-c7i"
    assert all(v.pool == "cpu-c7i" for v in capacity.variants)  # GPU variants were skipped: no GPU
    assert 100 < selected.throughput_per_s < 1000 and selected.latency_p99_ms < 50


def test_burn_in_is_replayed_but_not_measured(model: tuple[dict, catalog.CapacityModel]) -> None:
    pools, capacity = model
    counts = generator.diurnal(1 / 24, 100.0, seed=5)
    cfg = simulate.SimConfig(slo_ms=50)
    static = baselines.StaticPeak("onnx-int8", 4)
    busy = np.full(1800, 2000, dtype=np.int64)  # would overload four CPU replicas
    r = simulate.run(static, counts, capacity.variants, pools, cfg, burn_in=busy)
    assert r.total_cost == pytest.approx(2 * 0.1785)  # two c7i nodes for one measured hour
    assert r.scaling_actions == 0
    # The overload spilled into the measured hour as backlog, never as cost.
    plain = simulate.run(static, counts, capacity.variants, pools, cfg)
    assert plain.total_cost == pytest.approx(r.total_cost)


def test_capacity_is_read_from_a_converter_report(tmp_path: Path) -> None:
    from thrifty_api import report

    def variant(name: str, device: str, status: str, tput: float | None, p99: float | None) -> report.Variant:
        return report.Variant(
            name=name,
            format="onnx",
            precision="int8",
            device=device,
            status=status,
            throughput_per_s=tput,
            latency_ms=report.Latency(p50=None if p99 is None else p99 / 2, p99=p99),
        )

    doc = report.Report(
        model="m",
        target="gpu",
        machine=report.Machine(hostname="h", cpu="c", threads=2, cpu_flags=[], gpu=True),
        options={},
        stages=[],
        baseline=report.Baseline(
            name="b", latency_ms=report.Latency(), throughput_per_s=None, batch_size=None
        ),
        variants=[
            variant("trt", "gpu", "ok", 900, 9),
            variant("int8", "cpu", "ok", 50, 20),
            variant("broken", "cpu", "failed: parity", None, None),
        ],
        selected=report.Selected(variant="trt", reason="fastest"),
    )
    path = tmp_path / "report.json"
    report.write(doc, path)
    pools = catalog.load_pools(None)
    model = catalog.load_capacity(path, pools)
    assert model.selected == "trt"
    assert [v.name for v in model.variants] == ["trt", "int8"]
    assert model.variant("int8").pool == "cpu-c7i"
    assert model.variant("trt").throughput_per_s == 900


def test_capacity_report_errors_are_catalog_errors() -> None:
    pools = catalog.load_pools(None)
    ok = {"name": "a", "device": "cpu", "throughput_per_s": 10, "latency_ms": {"p50": 1, "p99": 2}}
    with pytest.raises(catalog.CatalogError, match="selected"):
        catalog.parse_capacity({"selected": "missing", "variants": [ok]}, pools)
    with pytest.raises(catalog.CatalogError, match="no variant"):
        catalog.parse_capacity({"selected": None, "variants": [dict(ok, status="failed: x")]}, pools)
    with pytest.raises(catalog.CatalogError):
        catalog.parse_pools("pools: [{name: x}]")


def test_benchmark_data_ships_in_the_package() -> None:
    # Package data, read through importlib.resources: the trace with its CC-BY attribution, the profile.
    assert bench.AZURE_TRACE.is_file() and bench.MEASURED_CPU.is_file()
    assert "CC-BY 4.0" in (bench.DATA / "traces" / "README.md").read_text()
    assert (bench.DATA / "capacity" / "README.md").is_file()


def test_default_catalogue_is_the_contract_format_with_the_same_figures() -> None:
    catalogue = contract_pools.parse(catalog.DEFAULT_POOLS_YAML)
    assert [p.name for p in catalogue.pools] == ["gpu-t4", "gpu-a10g", "cpu-c7i"]
    cpu = catalogue.get("cpu-c7i")
    assert cpu is not None and cpu.accelerator is None and cpu.startup_seconds == 60
    pools = catalog.load_pools(None)
    figures = {n: (p.cpu, p.memory_gib, p.gpu, p.price_per_hour, p.startup_s) for n, p in pools.items()}
    assert figures == {
        "gpu-t4": (4.0, 16.0, 1, 0.526, 120.0),
        "gpu-a10g": (4.0, 16.0, 1, 1.006, 120.0),
        "cpu-c7i": (4.0, 8.0, 0, 0.1785, 60.0),
    }
    assert pools["cpu-c7i"].accelerator == "none"


def test_the_operators_catalogue_loads_with_the_default_cold_start() -> None:
    pools = catalog.load_pools(ROOT / "config" / "pools.local.yaml")
    assert set(pools) == {"gpu-l4", "cpu-c7i"}
    assert pools["gpu-l4"].gpu == 1 and pools["cpu-c7i"].gpu == 0
    assert pools["cpu-c7i"].memory_gib == pytest.approx(14901 / 1024)
    assert {p.startup_s for p in pools.values()} == {catalog.DEFAULT_STARTUP_S}
    local = (ROOT / "config" / "pools.local.yaml").read_text()
    price = 'pricePerNodeHour: "0.357"'
    with_startup = local.replace(price, price + "\n  startupSeconds: 45")
    assert catalog.parse_pools(with_startup)["cpu-c7i"].startup_s == 45.0


def test_cli_rejects_a_catalogue_in_the_old_format_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.yaml"
    old.write_text(
        "currency: USD\npools:\n"
        "  - {name: cpu-c7i, accelerator: none, cpu: 4, memoryGiB: 8, gpu: 0, pricePerHour: 0.1785}\n"
    )
    argv = ["--generate", "--days", "0.01", "--out", str(tmp_path / "out"), "--pools", str(old)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "old simulator format" in err and "pricePerNodeHour" in err
    assert not (tmp_path / "out").exists()


def test_malformed_contract_catalogues_fail_with_one_line() -> None:
    text = (ROOT / "config" / "pools.local.yaml").read_text()
    cases = {
        text.replace('pricePerNodeHour: "0.357"', 'pricePerNodeHour: "0.357"\n  startupSeconds: 4000'): (
            "startupSeconds"
        ),
        text.replace("allocatable: {cpu: 7910m, memory: 14901Mi}", "allocatable: {cpu: lots, memory: 1Gi}"): (
            "allocatable.cpu"
        ),
        text.replace("nodeSelector: {karpenter.sh/nodepool: cpu-c7i}", "nodeSelectr: {}"): "nodeSelect",
        "pools: [": "pool catalogue",
    }
    for doc, needle in cases.items():
        with pytest.raises(catalog.CatalogError, match=needle) as info:
            catalog.parse_pools(doc)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_thrifty_never_overruns_random_budgets(seed: int, model: tuple[dict, catalog.CapacityModel]) -> None:
    pools, capacity = model
    rng = np.random.default_rng(seed)
    counts = generator.diurnal(
        2 / 24, float(rng.uniform(50, 1500)), float(rng.uniform(1.5, 4)), 24.0, seed=seed
    )
    # Caps from just above one CPU node (the cheapest min_replicas floor) up to more than enough.
    per_hour = float(rng.uniform(0.2, 3.0))
    per_month = float(rng.uniform(0.2, 3.0)) * 730
    budget = experiment.period_budget(per_hour, per_month, len(counts))
    cfg = simulate.SimConfig(slo_ms=50, budget=budget)
    controller = scaler.Thrifty(
        capacity.variants, pools, cfg, initial_rate=float(counts[:300].mean()), period_h=len(counts) / 3600
    )
    result = simulate.run(controller, counts, capacity.variants, pools, cfg)
    assert result.budget_overrun == 0, (per_hour, per_month)
    assert result.budget_overrun_windows == 0


@pytest.mark.parametrize("seed", [21, 22, 23, 24])
def test_thrifty_never_overruns_a_binding_monthly_budget_under_surprise_bursts(
    seed: int, model: tuple[dict, catalog.CapacityModel]
) -> None:
    """The monthly pacing spends ahead on forecasts; bursts of twice the load must not make it overrun."""
    pools, capacity = model
    rng = np.random.default_rng(seed)
    counts = generator.diurnal(
        0.5, float(rng.uniform(100, 800)), 3.0, 24.0, burst_multiplier=(1.8, 2.2), seed=seed
    )
    o1 = oracle.cheapest(counts, capacity.variants, pools, 50)
    budget = budgets.Budget(per_month=float(rng.uniform(0.5, 1.0)) * o1.total_cost)
    cfg = simulate.SimConfig(slo_ms=50, budget=budget)
    burn_in = generator.diurnal(0.5, float(counts.mean()), 3.0, seed=seed + 100)
    controller = scaler.Thrifty(
        capacity.variants,
        pools,
        cfg,
        initial_rate=float(counts[:300].mean()),
        period_h=len(counts) / 3600,
        burn_in_s=len(burn_in),
    )
    result = simulate.run(controller, counts, capacity.variants, pools, cfg, burn_in=burn_in)
    assert result.budget_overrun == 0, budget
    assert result.total_cost <= budget.per_month
    assert result.budget_limited_syncs > 0  # the budget did bind


def test_cli_rejects_negative_burn_in_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--generate", "--out", "unused", "--burn-in", "-5"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--burn-in" in err and "0 or more" in err


def test_cli_sets_the_hpa_utilisation_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def hpa_cost(target: str) -> float:
        out = tmp_path / target
        argv = ["--generate", "--days", "0.125", "--mean-rps", "1500", "--burn-in", "0"]
        assert cli.main([*argv, "--policies", "hpa", "--hpa-target", target, "--out", str(out)]) == 0
        return float(json.loads((out / "results.json").read_text())["policies"]["hpa"]["total_cost"])

    assert hpa_cost("0.4") > hpa_cost("0.9")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--generate", "--out", "unused", "--hpa-target", "1.5"])
    assert exit_info.value.code == 2
    assert "(0, 1]" in capsys.readouterr().err.strip().splitlines()[-1]


def test_monthly_cap_sweep_reports_each_run_and_never_overruns(capsys: pytest.CaptureFixture[str]) -> None:
    from thrifty_sim import sweep

    assert sweep.main(["--seeds", "3", "--shares", "0.7", "--days", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "   3   0.70" in out
    assert "runs that overran the budget: 0" in out
    assert "burn-in:" in out and "cold:" in out


def test_monthly_cap_sweep_rejects_a_malformed_list_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from thrifty_sim import sweep

    with pytest.raises(SystemExit) as exit_info:
        sweep.main(["--seeds", "3,x"])
    assert exit_info.value.code == 2
    assert "comma-separated positive whole numbers" in capsys.readouterr().err.strip().splitlines()[-1]
