"""The key a railbench drain reason carries (``bench.slurm.drain_key``, docs/slurm.md "The drain policy"): every
part that drains a node writes its key first, the key reads back whole from what Slurm keeps, only the key
decides whose node it is and which check judges it, and the reasons older releases wrote are still read as
railbench's by their one reader, so a node an older release drained is never resumed wrongly after an
upgrade. tests/test_slurm_health_unjudged.py does the same against a real Slurm."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.health.config import HEALTH_CHECKS
from bench.health.node import unjudged
from bench.preflight.checks import REGISTRY, CheckResult
from bench.profile.actions import DEFAULT_ACTIONS, Actions
from bench.rundir.findings import check_finding, gpu_finding, hung_finding, rail_finding
from bench.rundir.named_parts import NamedGpu, NamedPart
from bench.rundir.railsdoc import Conviction, GpuDefect, RailDefect
from bench.slurm import drain
from bench.slurm.drain_key import (
    LEGACY_PREFIX,
    DrainKey,
    legacy_drained_for,
    legacy_owned,
    read_key,
)
from bench.textlines import printable

NODE = "gpu-node07"


def _rails(kind: str, symptom: str = "slow", **extra: object) -> drain.NodeFault:
    fields: dict[str, object] = {"kind": kind, "node": NODE, "rail": 1, "device": "mlx5_2"}
    named = NamedPart(**{**fields, "conviction": Conviction(symptom=symptom), **extra})  # type: ignore[arg-type]
    return drain.NodeFault(NODE, rail_finding(RailDefect(named=named, action=f"{kind} action")))


def _gpu(kind: str, **extra: object) -> drain.NodeFault:
    fields: dict[str, object] = {"kind": kind, "node": NODE, "gpu": 3, "bus_id": "0000:1b:00.0"}
    named = NamedGpu(**{**fields, "conviction": Conviction(symptom="slow"), **extra})  # type: ignore[arg-type]
    return drain.NodeFault(NODE, gpu_finding(GpuDefect(named=named, action="x")))


ECC = CheckResult(
    "gpu-ecc",
    "fail",
    "GPU3: GPU 3 (0000:1b:00.0): 1 pending row remap",
    "GPU3",
    said="GPU 3 (0000:1b:00.0): 1 pending row remap",
)
HUNG = CheckResult(
    "time-limit", "fail", "rail-errors did not finish within the 30 s time limit: reading the node's devices hung"
)
FAULTS: dict[str, tuple[drain.NodeFault, str, str | None]] = {
    # fault, the token its reason opens with, the health check that judges it again (None: a measured part, which
    # no check of one node judges: a slow cable keeps its port up at full rate, errors under load stay quiet at rest)
    "check": (drain.check_faults(NODE, [ECC], Actions())[0][0], "railbench[check:gpu-ecc/gpu-ecc]", "gpu-ecc"),
    "hung": (
        drain.NodeFault(NODE, hung_finding(NODE, HUNG, "check the node: its drivers and devices", "rail-errors")),
        "railbench[run:rail-errors/-]",
        "rail-errors",
    ),
    "link": (_rails("link", "dead"), "railbench[link:1/-]", None),
    "cable": (_rails("cable", ports=("leaf-r1 port 7",)), "railbench[cable:1/-]", None),
    "errors": (_rails("errors", "errors"), "railbench[errors:1/-]", None),
    "path": (_rails("path", "misrouted"), "railbench[path:1/-]", None),
    "node": (_rails("node", rail=None, device=None), "railbench[node/-]", None),
    "gpu": (_gpu("gpu"), "railbench[gpu:3/-]", None),
    "gpu-pair": (_gpu("gpu-pair", peer=6, peer_bus_id="0000:ba:00.0"), "railbench[gpu-pair:3-6/-]", None),
    "local pairs": (_gpu("node"), "railbench[node:gpus/-]", None),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_part_that_drains_a_node_opens_its_reason_with_its_key(name: str) -> None:
    fault, token, judged_by = FAULTS[name]
    why = drain.reason([fault])
    assert why.startswith(f"{token} ") and fault.key.token == token
    assert read_key(why) == fault.key and fault.key.judged_by == judged_by
    assert drain.owned(why) and drain.drained_for(why, HEALTH_CHECKS) == judged_by
    assert drain.drained_for_measured(why) == (name not in ("check", "hung"))
    # The sentence after the key is the one older releases wrote after "railbench: ", with the same room: the
    # key decides as their reader did on it, a measured part's as measured.
    sentence = why[len(token) + 1 :]
    assert len(sentence) <= drain.MAX_SENTENCE_CHARS and len(why) <= drain.MAX_REASON_CHARS
    assert legacy_drained_for(f"{LEGACY_PREFIX} {sentence}", HEALTH_CHECKS) == judged_by
    assert drain.drained_for_measured(f"{LEGACY_PREFIX} {sentence}") == drain.drained_for_measured(why)


@pytest.mark.parametrize("name", list(FAULTS))
def test_health_resumes_only_what_a_check_of_the_node_judges_again(name: str) -> None:
    """A node drained for a check passes it again: resumed. Drained for a part measured across nodes (a slow cable,
    a dead link, errors under load, a GPUDirect path, a GPU's bandwidth): kept, whatever health's checks say,
    since none of them measures it."""
    fault, _, judged_by = FAULTS[name]
    why = drain.reason([fault])
    passing = tuple(CheckResult(check, "pass", "fine", None) for check in HEALTH_CHECKS)
    kept = unjudged(why, passing)
    if judged_by is None:
        assert kept is not None and "measured across nodes" in kept and "resume it by hand" in kept
    else:
        assert kept is None


def test_the_sentence_after_the_key_is_the_one_older_releases_wrote() -> None:
    """The same room as before the key, so the same words: here the finding left out, the part and the whole
    action kept."""
    assert drain.reason([FAULTS["check"][0]]) == (
        "railbench[check:gpu-ecc/gpu-ecc] gpu-ecc GPU3; drain gpu-node07 and reset GPU3 (?) to apply its pending row "
        "remap, repair or page retirement; replace it (RMA) if a remap failed or its memory is beyond repair"
    )
    assert drain.reason([FAULTS["gpu"][0], FAULTS["link"][0]]) == (
        "railbench[gpu:3/-] GPU 3 (0000:1b:00.0) gpu slow; x (+1 more)"
    )


def test_every_check_and_action_key_fits_in_a_key_whole() -> None:
    """A name the token cannot carry is left out of it: a check named too long would lose the one thing railbench
    reads back, so each of the registry's checks and each action key is held here."""
    for check in {c.name for c in REGISTRY}:
        key = DrainKey("check", check, check)
        assert read_key(f"{key.token} words") == key, check
        assert DrainKey("run", check).judged_by == check
    for action in DEFAULT_ACTIONS:
        assert read_key(DrainKey("link", "1", action).token) == DrainKey("link", "1", action)


def test_only_the_key_decides() -> None:
    # the sentence names another check: the key is what railbench wrote as data
    assert drain.drained_for("railbench[check:gpu-ecc/gpu-ecc] rail-errors mlx5_1:1 rose", HEALTH_CHECKS) == "gpu-ecc"
    assert drain.drained_for("railbench[gpu:3/-] gpu-ecc GPU3 ...", HEALTH_CHECKS) is None
    # a check this health check does not run: nothing of it to wait for
    assert drain.drained_for("railbench[check:nvlink-x/nvlink-x] nvlink-x", HEALTH_CHECKS) is None
    # someone else's words, whatever they quote
    for other in (
        "maintenance railbench[check:gpu-ecc/gpu-ecc] swap",
        "railbench[check:gpu-ecc/gpu-ecc]swap the PSU",
        "railbench[check:gpu ecc/gpu-ecc] x",
        "Railbench[check:gpu-ecc/gpu-ecc] x",
        "maintenance: railbench: later",
        "",
    ):
        assert not drain.owned(other) and read_key(other) is None, other
        assert drain.drained_for(other, HEALTH_CHECKS) is None, other
    # a name from outside (a checks.json's check) is never written into the key: its kind is
    hostile = drain.NodeFault(NODE, check_finding(NODE, CheckResult("rail 1 (x\x1b[2Jy)", "fail", "dead", None)))
    assert hostile.key == DrainKey("check") and drain.reason([hostile]).startswith("railbench[check/-] ")
    assert drain.drained_for(drain.reason([hostile]), HEALTH_CHECKS) is None


_OUTSIDE = st.text(max_size=120) | st.lists(st.sampled_from(['"', "\n", "\x1b[2J", " ", "x", "]", "railbench["])).map(
    "".join
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(check=st.sampled_from(sorted(drain.NODE_CHECKS)), said=_OUTSIDE, action=_OUTSIDE)
def test_the_key_reads_back_from_what_slurm_keeps(check: str, said: str, action: str) -> None:
    """The reason as Slurm holds it: sent printable and on one line (``bench.slurm.scheduler.drain``), then
    scontrol drops one ``"`` at either end of the value (``src/scontrol/update_node.c``, ``Reason``), and
    slurmctld stores the rest as sent (``src/slurmctld/node_mgr.c``, ``update_node``)."""
    fault = drain.NodeFault(NODE, check_finding(NODE, CheckResult(check, "fail", said, "mlx5_1", action or None)))
    why = drain.reason([fault])
    sent = " ".join(printable(why).split())
    kept = sent[1:] if sent.startswith('"') else sent
    kept = kept[:-1] if kept.endswith('"') else kept
    assert read_key(kept) == DrainKey("check", check, check) and drain.drained_for(kept, [check]) == check
    assert len(why) <= drain.MAX_REASON_CHARS and len(why) - len(fault.key.token) - 1 <= drain.MAX_SENTENCE_CHARS


# -- reasons older releases wrote ----------------------------------------------------------------------------

LEGACY_REASONS: dict[str, str | None] = {
    # Slurm held this one in the testbed (tests/test_slurm_health.py before the key)
    "railbench: socket-rail rail1 operstate down, expected up; check the link, the speed and the cable of "
    "node02 rail1": "socket-rail",
    # docs/slurm.md's health example, drain.reason's own output before the key
    "railbench: rail mlx5_3:1 port DOWN (phys_state Disabled), expected ACTIVE/LinkUp; check the port state, "
    "the rate and the cable of gpu-node07 mlx5_3 port 1": "rail",
    "railbench: gpu-ecc GPU3 GPU 3 (0000:1b:00.0): 1 pending row remap; drain gpu-node07 and reset GPU 3": "gpu-ecc",
    "railbench: gpu-ecc GPU3; drain gpu-node07 and reset GPU3 (?) to apply its pending row remap, repair or page "
    "retirement; replace it (RMA) if a remap failed or its memory is beyond repair": "gpu-ecc",
    "railbench: rail-errors did not finish within the 30 s time limit: reading the node's devices hung; check the "
    "node: its drivers and devices": "rail-errors",
    "railbench: rail 2 (mlx5_3) cable slow; reseat or replace the cable on node04 mlx5_3 port 1 and leaf-r2 port "
    "7": None,
    "railbench: rail 1 (rail1) link dead; check the port state and the cable of node02 rail1": None,
    "railbench: GPU 3 (0000:1b:00.0) gpu slow; drain gpu-node07 and check NVLink of GPU 3 (+1 more)": None,
    "railbench: every rail node slow; drain gpu-node07 and check its PCIe/NUMA/GPU placement": None,
    "railbench: failed its checks": None,
}
"""Reasons the release before the key wrote, verbatim, and the check each was drained for (None: a measured part,
or no check's)."""
LEGACY_MEASURED = {
    "railbench: rail 2 (mlx5_3) cable slow; reseat or replace the cable on node04 mlx5_3 port 1 and leaf-r2 port 7",
    "railbench: rail 1 (rail1) link dead; check the port state and the cable of node02 rail1",
    "railbench: GPU 3 (0000:1b:00.0) gpu slow; drain gpu-node07 and check NVLink of GPU 3 (+1 more)",
    "railbench: every rail node slow; drain gpu-node07 and check its PCIe/NUMA/GPU placement",
}


@pytest.mark.parametrize("old", list(LEGACY_REASONS))
def test_a_reason_an_older_release_wrote_is_still_railbenchs(old: str) -> None:
    check = LEGACY_REASONS[old]
    assert read_key(old) is None and legacy_owned(old) and drain.owned(old)
    assert drain.drained_for(old, HEALTH_CHECKS) == check
    assert drain.drained_for_measured(old) == (old in LEGACY_MEASURED)
    if old in LEGACY_MEASURED:  # kept for good after the upgrade, as this release keeps its own
        assert unjudged(old, (CheckResult("rail", "pass", "fine", None),)) is not None
    if check is None:
        return
    # its check skipped after the upgrade: the node stays drained; judged: it may be resumed
    skipped = (CheckResult(check, "skip", "no nvidia-smi -q -x report: nvidia-smi is not on the PATH", None),)
    assert unjudged(old, skipped) == (
        f"{check}, which it was drained for, was not judged this time (no nvidia-smi -q -x report: nvidia-smi is "
        "not on the PATH); check the node by hand"
    )
    assert unjudged(old, ()) is not None
    assert unjudged(old, (CheckResult(check, "pass", "fine", None),)) is None
