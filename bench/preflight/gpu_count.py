"""``gpu-count``: the GPUs that answer on the PCI bus, against the profile's count and model (docs/design.md,
"One verdict").

The count is a fact of the node (issue 42): LBNL NHC's ``check_nv_gpu_count`` and Azure's
``check_gpu_count`` (azurehpc-health-checks ``customTests/azure_gpu_count.nhc``: "Expected to see 8 but found
0", fault code NHC2009) fail a node whose GPU count is not the one expected, zero included. Counted here are
the NVIDIA GPUs sysfs lists whose configuration space answers: a GPU that fell off the bus (Xid 79) stays
listed with the vendor and class the kernel read at boot, but its ``config`` reads all ones
(``bench.fabric.pci_config.answers``); a function whose very vendor reads 0xffff answers nothing either. Each
such function is named with its address. What to do is NHC's and NVIDIA's order: check the GPU's power and
seating and the driver, reboot (a GPU off the bus comes back only with a reset), and replace a GPU that stays
missing (the profile's ``[actions.checks] gpu-count``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from bench.fabric import topology
from bench.preflight.check_base import CheckResult, Context, listed


def count_findings(ctx: Context, name: str) -> list[CheckResult]:
    """The ``gpu-count`` results of ``ctx``'s node (``name`` is the check's name)."""
    gpus = ctx.gpus
    found = topology.silent_functions(ctx.sysfs, gpus)
    quiet = {f.address for f in found if f.gpu}
    answering = [g for g in gpus if g.pci_address not in quiet]
    expected = ctx.profile.gpus_per_node
    short = expected is not None and len(answering) < expected
    # A function that lost even its vendor may be any device; it is named here only when GPUs are missing.
    silent = [f for f in found if f.gpu or short]
    out = []
    if silent or (expected is not None and len(answering) != expected):
        out.append(_count_result(ctx, name, answering, silent, expected))
    out += _model_results(ctx, name, answering)
    if not out:
        models = Counter(g.model for g in answering)
        model = ", ".join(f"{n} x {m}" for m, n in models.items())
        out.append(CheckResult(name, "pass", f"{len(answering)} GPUs: {model} (from {answering[0].source})"))
    return out


def _count_result(
    ctx: Context,
    name: str,
    answering: Sequence[topology.Gpu],
    silent: Sequence[topology.SilentFunction],
    expected: int | None,
) -> CheckResult:
    total = expected if expected is not None else len(answering) + sum(1 for f in silent if f.gpu)
    if expected is not None and len(answering) > expected:
        reason = f"{len(answering)} GPUs answer on the PCI bus, expected {expected}"
    else:
        reason = f"{len(answering)} of {total} GPUs answer on the PCI bus"
    if silent:
        said = {f.said: [g.address for g in silent if g.said == f.said] for f in silent}
        named = "; ".join(f"{listed(addresses, 8)} ({words})" for words, addresses in said.items())
        reason += f"; not answering: {named}: fell off the bus or lost power"
    elif expected is not None and len(answering) < expected:
        reason += ": missing from the bus (unseated, unpowered or disabled)"
    order = [p.gpu.pci_address for p in ctx.gpu_paths]
    indexes = [order.index(f.address) for f in silent if f.address in order]
    device = f"GPU{indexes[0]}" if indexes else (silent[0].address if silent else None)
    action = ctx.action(name, device=device or "its GPUs")
    return CheckResult(name, "fail", reason, device, action, tuple(sorted(indexes)))


def _model_results(ctx: Context, name: str, gpus: Sequence[topology.Gpu]) -> list[CheckResult]:
    """Mixed models on one node, or a model other than the profile's."""
    out = []
    models = Counter(g.model for g in gpus)
    action = ctx.action(name, device="its GPUs")
    if len(models) > 1:
        odd = [f"GPU{g.index} ({g.pci_address}) {g.model}" for g in gpus if g.model != models.most_common(1)[0][0]]
        out.append(CheckResult(name, "fail", f"mixed GPU models: {listed(odd)}", odd[0].split()[0], action))
    wanted = ctx.profile.gpu_model
    if wanted is not None:
        wrong = [g for g in gpus if wanted.lower() not in g.model.lower()]
        if wrong:
            named = listed([f"GPU{g.index} ({g.pci_address})" for g in wrong])
            reason = f"{named} not {wanted} ({wrong[0].model})"
            out.append(CheckResult(name, "fail", reason, f"GPU{wrong[0].index}", action))
    return out
