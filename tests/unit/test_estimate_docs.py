"""The cost figures in docs/infra.md and the first-deploy timeline in docs/deploy.md are
generated from the product: the price coverage of the snapshot, the default deployment's
estimate and its critical path. `python tests/unit/test_estimate_docs.py` rewrites the blocks;
the tests fail when the docs no longer match."""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "infra.md"
DEPLOY_DOC = DOC.with_name("deploy.md")


def coverage_block() -> str:
    from zenml_gcp_gitops.config import SUPPORTED_REGIONS
    from zenml_gcp_gitops.estimate.prices import PRICE_KEYS, _snapshot

    data = _snapshot()
    where: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for region in sorted(SUPPORTED_REGIONS):
        for key, (_, source) in (data["regions"].get(region) or {}).items():
            where[key][source].append(region)
    rows = ["| price | regions with a figure | source (as of) |", "|---|---|---|"]
    for key in PRICE_KEYS:
        if key in data["global"]:
            _, source = data["global"][key]
            rows.append(f"| `{key}` | all (global) | {_source(data, source)} |")
            continue
        by_source = where.get(key) or {}
        if not by_source:
            rows.append(f"| `{key}` | none | — |")
        for source, regions in sorted(by_source.items()):
            n = len(regions)
            names = "all" if n == len(SUPPORTED_REGIONS) else ", ".join(regions)
            rows.append(f"| `{key}` | {names} ({n}) | {_source(data, source)} |")
    return "\n".join(rows)


def _source(data: dict[str, Any], source_id: str) -> str:
    src = data["sources"][source_id]
    return f"[{source_id}]({src['url']}) ({src['as_of']})"


def example_block() -> str:
    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.plan import offline_plan

    cfg = build_config(None, {"project": "my-proj-1", "region": "us-central1"})
    cost = offline_plan(cfg)["cost"]
    rows = ["| item | quantity | USD per month |", "|---|---|---:|"]
    for line in cost["lines"]:
        value = "—" if line["monthly"] is None else f"{line['monthly']:.2f}"
        rows.append(f"| {line['item']} | {line['quantity']} | {value} |")
    partial = " (partial)" if cost["partial"] else ""
    rows.append(f"| **total** | | **{cost['monthly_total']:.2f}**{partial} |")
    return "\n".join(rows)


def timeline_block() -> str:
    from zenml_gcp_gitops.config import build_config
    from zenml_gcp_gitops.estimate.durations import fmt_duration
    from zenml_gcp_gitops.estimate.graph import timeline
    from zenml_gcp_gitops.plan import offline_plan

    cfg = build_config(None, {"project": "my-proj-1", "region": "us-central1"})
    d = offline_plan(cfg)["duration"]
    first = d["first_deploy"]
    span = f"first deploy {fmt_duration(first['min_s'])} - {fmt_duration(first['max_s'])}"
    return f"```\n{timeline(d)}\n{span}\n```"


def _block(text: str, name: str) -> str:
    m = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert m, f"the doc has no {name} block"
    return m.group(1).strip()


def _write(text: str, name: str, body: str) -> str:
    return re.sub(
        rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)",
        lambda m: f"{m.group(1)}{body}\n{m.group(2)}",
        text,
        flags=re.S,
    )


def test_docs_price_coverage_is_the_snapshots() -> None:
    assert _block(DOC.read_text(), "price-coverage") == coverage_block()


def test_docs_cost_example_is_the_plans() -> None:
    assert _block(DOC.read_text(), "cost-example") == example_block()


def test_deploy_docs_timeline_is_the_plans() -> None:
    assert _block(DEPLOY_DOC.read_text(), "timeline") == timeline_block()


def test_docs_name_every_estimate_setting_with_its_default() -> None:
    from zenml_gcp_gitops.config import Estimate

    text = DOC.read_text()
    for name, field in Estimate.model_fields.items():
        m = re.search(rf"^  {name}: .*\[(.+)\]$", text, re.M)
        assert m, f"docs/infra.md's estimate example lacks {name}"
        if field.default is not None:
            value = float(field.default)
            shown = str(int(value)) if value.is_integer() else f"{value:g}"
            assert m.group(1) == shown, name


def _minutes(lo: float, hi: float) -> str:
    return f"{lo / 60:g}\N{EN DASH}{hi / 60:g} min"  # the docs use an en dash


def test_docs_duration_figures_are_the_tables() -> None:
    """The duration figures docs/infra.md quotes are the ones in durations.py."""
    from zenml_gcp_gitops.estimate import durations as dur
    from zenml_gcp_gitops.run_options import RunOptions

    text = " ".join(DOC.read_text().split())
    sql, cluster = dur.CREATE_TIMES[dur._SQL], dur.CREATE_TIMES["gcp:container/cluster:Cluster"]
    quoted = {
        "cluster": f"Autopilot cluster {_minutes(cluster.min_s, cluster.max_s)}",
        "sql": f"Cloud SQL instance {_minutes(sql.min_s, sql.max_s)}",
        "regional": f"instance {_minutes(*_span(dur.SQL_SHAPE_EXTRA['REGIONAL']))} for its standby",
        "cmek": f"(the default) {_minutes(*_span(dur.SQL_SHAPE_EXTRA['CMEK']))}",
        "dns_wait": f"public resolution ({_minutes(*_span(dur.PHASE_TIMES['dns_wait']))};",
        "delegation": f"(`dns_wait_timeout`, {RunOptions().dns_wait_timeout / 60:g} min)",
        "dns01": f"ACME check ({_minutes(*_span(dur.PHASE_TIMES['dns01']))})",
    }
    assert dur.PHASE_TIMES["dns_delegation"].max_s == RunOptions().dns_wait_timeout
    for what, phrase in quoted.items():
        assert phrase in text, (what, phrase)


def _span(t: Any) -> tuple[float, float]:
    return t.min_s, t.max_s


if __name__ == "__main__":  # regenerate the blocks
    text = DOC.read_text()
    text = _write(text, "price-coverage", coverage_block())
    text = _write(text, "cost-example", example_block())
    DOC.write_text(text)
    DEPLOY_DOC.write_text(_write(DEPLOY_DOC.read_text(), "timeline", timeline_block()))
    sys.exit(0)
