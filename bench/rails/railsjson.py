"""rails.json's document, built once from rank 0's outcome (its schema and the readers' check live in
``bench.rundir.railsjson``)."""

from __future__ import annotations

from bench.rails import gpu_pairs, records
from bench.rails.records import RailsOutcome


def rails_doc(outcome: RailsOutcome) -> dict[str, object]:
    """The rails.json document of ``outcome``."""
    devices = records.device_map(outcome.devices)
    return {
        "skipped": outcome.skipped,
        "nodes": list(outcome.nodes),
        "rails": [
            {
                "rail": rd.rail,
                "line_rate_Gbps": outcome.expected.get(rd.rail),
                "devices": dict(rd.device),
                "expected_devices": dict(rd.expected),
                "path": rd.path_json(),
                "bytes_alone": {n: dict(m) for n, m in rd.moved.items()},
            }
            for rd in outcome.devices
        ],
        "measurements": records.measurement_json(
            outcome.rail_results, outcome.pair_times, outcome.nodes, outcome.expected, devices
        ),
        "defects": [d.as_dict() for d in outcome.defects],
        "transients": [t.as_dict() for t in outcome.transients],
        "too_noisy": outcome.too_noisy,
        "counter_findings": list(outcome.findings),
        "below_target": list(outcome.below_target),
        "counters": outcome.counters,
        "error_windows": [w.as_dict() for w in outcome.error_windows],
        "process_groups": outcome.process_groups,
        "intra_node": gpu_pairs.as_json(outcome.intra_node) if outcome.intra_node is not None else None,
        "links": list(outcome.links),
    }
