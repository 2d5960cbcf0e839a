"""The definitions as a snapshot: the asset graph the README draws, checked in a second without a server.

A new asset, a lost edge or an asset moved to another group fails here first, with the README to update named;
test_ui_journeys then checks that the running UI serves the same lineage.
"""

import re
from pathlib import Path

from analytics_pipeline.definitions import defs
from analytics_pipeline_tests.lineage import EDGES, GROUPS, PARTITIONED

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SPECS = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}


def test_the_asset_graph_is_the_one_the_readme_draws():
    edges = {(dep.asset_key.to_user_string(), name) for name, spec in SPECS.items() for dep in spec.deps}
    assert edges == EDGES, f"new: {edges - EDGES}; gone: {EDGES - edges} (update README's asset graph and lineage.py)"
    assert {name: spec.group_name for name, spec in SPECS.items()} == {
        name: group for group, names in GROUPS.items() for name in names
    }
    assert {name for name, spec in SPECS.items() if spec.partitions_def is not None} == PARTITIONED


def test_every_asset_explains_itself_and_is_in_the_readme():
    diagram = README.split("## The asset graph", 1)[1].split("```")[1]
    table = set(re.findall(r"^\| `([a-z_]+)`", README, flags=re.M)) | {
        name for row in re.findall(r"^\| (`[a-z_]+`(?:, `[a-z_]+`)+) \|", README, flags=re.M)
        for name in re.findall(r"`([a-z_]+)`", row)
    }
    for name, spec in SPECS.items():
        assert len(spec.description or "") > 80, f"{name}: the UI shows its description; it should say what it holds"
        assert spec.kinds, f"{name}: no kinds, so the UI shows no badge for what computes it"
        assert re.search(rf"\b{name}\b", diagram), f"{name} is missing from README's asset graph"
        assert name in table, f"{name} has no row in README's asset table"
    for group in GROUPS:
        assert f"[{group}" in diagram, f"README's asset graph does not label the {group} group"


def test_every_job_schedule_and_sensor_is_documented():
    names = [definition.name for definition in (*defs.jobs, *defs.schedules, *defs.sensors)]
    assert len(names) >= 8
    for name in names:
        assert re.search(rf"\b{name}\b", README), f"{name} is not mentioned in README"
