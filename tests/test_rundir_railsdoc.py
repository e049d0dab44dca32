"""rails.json's typed record (``bench.rundir.railsdoc``): what the writer writes reads back as the same record,
an older document still reads, and a damaged or hand-made one is refused in one line naming its field."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from bench import codec
from bench.exits import UserError
from bench.rundir import railsdoc
from bench.rundir.docversion import RAILS_FORMAT_VERSION
from bench.rundir.railsdoc import SCHEMA_PATH, RailsDoc, read_rails_doc
from tests.support.report_data import ClusterModel, rails_json


def test_a_document_reads_back_as_the_record_it_was_written_from() -> None:
    doc = RailsDoc.from_json(json.loads(json.dumps(rails_json(ClusterModel(bad_gpu=("gpu-node-02", 3))))))
    written = json.loads(json.dumps(doc.to_json()))
    again = RailsDoc.from_json(written)
    assert again == doc and again.to_json() == written
    jsonschema.validate(written, json.loads(SCHEMA_PATH.read_text()))
    assert doc.intra_node is not None and doc.intra_node.localisation.defects and doc.defects and doc.counters


def test_a_partial_document_writes_only_what_the_schema_requires() -> None:
    partial = RailsDoc(partial=True, nodes=("n1", "n2")).to_json()
    assert partial == {
        "format_version": RAILS_FORMAT_VERSION,
        "partial": True,
        "skipped": None,
        "nodes": ["n1", "n2"],
        "rails": [],
        "measurements": [],
        "defects": [],
    }
    assert RailsDoc.from_json(partial).partial


def test_an_older_document_reads_with_its_missing_fields_absent(tmp_path: Path) -> None:
    # an earlier release: no version, no skipped, no counters or intra-node, a defect kind this one never writes
    older = {
        "nodes": ["a", "b"],
        "measurements": [{"kind": "pair", "rail": 0, "node": "a", "peer": "b", "busbw_Gbps": 9}],
        "defects": [{"kind": "hca", "node": "a", "symptom": "transient"}],
        "transients": [{}],
    }
    (tmp_path / "rails.json").write_text(json.dumps(older))
    doc = read_rails_doc(tmp_path)
    assert doc is not None and doc.skipped is None and doc.counters == {} and doc.intra_node is None
    (defect,) = doc.defects
    assert (defect.kind, defect.node, defect.rail, defect.severity, defect.errors) == ("hca", "a", None, "fail", None)
    assert defect.action == "" and defect.causes == ()  # written before every defect said its action
    assert doc.transients == (railsdoc.Transient(),)
    assert doc.measurements[0].busbw_Gbps == 9 and doc.measurements[0].expected_Gbps is None
    assert read_rails_doc(tmp_path / "nowhere") is None


def test_an_older_intra_node_defect_reads_as_saying_no_action(tmp_path: Path) -> None:
    """An intra-node defect written before each carried its action reads as one saying none, and one naming no
    kind as one of no kind: the conviction step builds every ``GpuDefect`` with both, and only reading supplies
    them, as the record's defaults once did."""
    older = {
        "nodes": ["a"],
        "measurements": [],
        "defects": [],
        "intra_node": {
            "nodes": ["a"],
            "local_ranks": 4,
            "defects": [{"kind": "gpu", "node": "a", "gpu": 1, "symptom": "slow"}, {"node": "a", "symptom": "slow"}],
        },
    }
    (tmp_path / "rails.json").write_text(json.dumps(older))
    doc = read_rails_doc(tmp_path)
    assert doc is not None and doc.intra_node is not None
    gpu, unnamed = doc.intra_node.localisation.defects
    assert (gpu.kind, gpu.node, gpu.gpu, gpu.action, gpu.causes) == ("gpu", "a", 1, "", ())
    assert (unnamed.kind, unnamed.action) == ("", "")


@pytest.mark.parametrize(
    ("doc", "said"),
    [
        ({"measurements": 5}, "measurements holds 5, not a list"),
        ({"rails": True}, "rails holds true, not a list"),
        ({"defects": [{"kind": "link", "rail": "0"}]}, 'defects[0].rail holds "0", not a whole number'),
        ({"defects": [{"kind": "link", "extra": [1, 2]}]}, "defects[0].names fields this railbench does not know"),
        ({"transients": [7]}, "transients[0] holds 7, not an object"),
        ({"measurements": [{"kind": "pair", "rail": 0, "busbw_Gbps": 1}]}, "names no node or peer"),
        ({"measurements": [{"kind": "rail", "rail": 0}]}, "measurements[0].busbw_Gbps is missing"),
        ({"counters": {"a": {"mlx5_0": {"bytes": -0.5}}}}, "counters.a.mlx5_0.bytes holds -0.5, not a whole number"),
    ],
)
def test_a_field_of_the_wrong_type_is_one_line_naming_the_file_and_the_field(
    tmp_path: Path, doc: dict[str, object], said: str
) -> None:
    (tmp_path / "rails.json").write_text(json.dumps({"format_version": 1, **doc}))
    with pytest.raises(UserError) as refused:
        read_rails_doc(tmp_path)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'rails.json'}: ") and said in message, message
    assert message.endswith(": re-run railbench rails") and "\n" not in message


def test_numpy_scalars_are_written_as_their_values() -> None:
    """Localisation computes with numpy: a defect whose count is an np.int64 or whose flag is an np.bool_ is
    written with those values (JSON numbers and booleans), never refused at the end of a run."""
    written = codec.encode({"slow_pairs": np.int64(7), "measured_Gbps": np.float64(212.5), "stopped": np.bool_(True)})
    assert json.loads(json.dumps(written)) == {"slow_pairs": 7, "measured_Gbps": 212.5, "stopped": True}
    with pytest.raises(TypeError, match="ndarray"):
        codec.encode(np.arange(3))  # an array is a writer's mistake, said as one
