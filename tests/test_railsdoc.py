"""rails.json's typed record (``bench.rundir.railsdoc``): every field can be read back, what the writer writes
reads back as the same record, and older or hand-made documents still read."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from bench.exits import UserError
from bench.jsonparts import READERS, as_json
from bench.rundir import railsdoc
from bench.rundir.railsdoc import SCHEMA_PATH, RailsDoc, read_rails_doc
from tests.report_data import ClusterModel, rails_json

PARTS = (
    railsdoc.DeviceCounters,
    railsdoc.DefectErrors,
    railsdoc.DefectCause,
    railsdoc.RailEntry,
    railsdoc.Measurement,
    railsdoc.RailDefect,
    railsdoc.Transient,
    railsdoc.GpuDefect,
    railsdoc.LocalMeasurement,
    railsdoc.IntraNode,
    railsdoc.ErrorWindow,
    railsdoc.Link,
    railsdoc.RailsDoc,
)
# the fields each part reads itself (nested parts), not through the table of declared types
NESTED = {
    "Measurement": {"kind"},
    "RailDefect": {"errors", "causes"},
    "GpuDefect": {"causes"},
    "IntraNode": {"measurements", "defects"},
    "ErrorWindow": {"errors"},
    "RailsDoc": {
        "rails",
        "measurements",
        "defects",
        "transients",
        "error_windows",
        "intra_node",
        "links",
        "counters",
        "node_causes",
    },
}


def test_every_field_of_every_part_has_a_reader() -> None:
    for part in PARTS:
        for f in dataclasses.fields(part):
            assert f.name in NESTED.get(part.__name__, ()) or str(f.type) in READERS, (part, f.name, f.type)


def test_a_document_reads_back_as_the_record_it_was_written_from() -> None:
    doc = RailsDoc.from_json(json.loads(json.dumps(rails_json(ClusterModel(bad_gpu=("gpu-node-02", 3))))))
    written = json.loads(json.dumps(doc.to_json()))
    again = RailsDoc.from_json(written)
    assert again == doc and again.to_json() == written
    jsonschema.validate(written, json.loads(SCHEMA_PATH.read_text()))
    assert doc.intra_node is not None and doc.intra_node.defects and doc.defects and doc.counters


def test_a_partial_document_writes_only_what_the_schema_requires() -> None:
    partial = RailsDoc(partial=True, nodes=("n1", "n2")).to_json()
    assert partial == {
        "format_version": 1,
        "partial": True,
        "skipped": None,
        "nodes": ["n1", "n2"],
        "rails": [],
        "measurements": [],
        "defects": [],
    }
    assert RailsDoc.from_json(partial).partial


def test_an_older_document_reads_with_its_missing_fields_absent(tmp_path: Path) -> None:
    # an earlier release: no skipped, no counters or intra-node, a defect kind and fields this one never writes
    older = {
        "nodes": ["a", "b"],
        "measurements": [{"kind": "pair", "rail": 0, "node": "a", "peer": "b", "busbw_Gbps": 9}],
        "defects": [{"kind": "hca", "node": "a", "rail": "0", "symptom": "transient", "extra": [1, 2]}],
        "transients": [{}],
    }
    (tmp_path / "rails.json").write_text(json.dumps(older))
    doc = read_rails_doc(tmp_path)
    assert doc is not None and doc.skipped is None and doc.counters == {} and doc.intra_node is None
    (defect,) = doc.defects
    assert (defect.kind, defect.node, defect.rail, defect.severity, defect.errors) == ("hca", "a", None, "fail", None)
    assert doc.transients == (railsdoc.Transient(),)
    assert doc.measurements[0].busbw_Gbps == 9 and doc.measurements[0].expected_Gbps is None
    assert read_rails_doc(tmp_path / "nowhere") is None


def test_a_field_of_the_wrong_type_is_one_line_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "rails.json").write_text(json.dumps({"measurements": 5}))
    with pytest.raises(UserError, match=r"rails.json: 'measurements' must be a list, not int: re-run railbench rails"):
        read_rails_doc(tmp_path)


def test_numpy_scalars_are_written_as_their_values() -> None:
    """Localisation computes with numpy: a defect whose count is an np.int64 or whose flag is an np.bool_ is
    written with those values (JSON numbers and booleans), never refused at the end of a run."""
    written = as_json({"slow_pairs": np.int64(7), "measured_Gbps": np.float64(212.5), "stopped": np.bool_(True)})
    assert json.loads(json.dumps(written)) == {"slow_pairs": 7, "measured_Gbps": 212.5, "stopped": True}
    with pytest.raises(TypeError, match="ndarray"):
        as_json(np.arange(3))  # an array is a writer's mistake, said as one
