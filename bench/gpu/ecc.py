"""One GPU's memory judged as NVIDIA judges it, from ``nvidia-smi -q -x`` (``bench.gpu.smi``).

NVIDIA's GPU memory error management guide (https://docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt/, "Row
Remapping", "Error Recovery and Response Flags", "RMA Policy Thresholds for Row-Remapping") and NVML's
``nvmlDeviceGetRemappedRows`` say what each state means:

* a **pending row remap** (``remapped_row_pending: Yes``) takes effect at the next GPU reset: reset it;
* a **remap failure** (``remapped_row_failure: Yes``) means the bank ran out of spare rows: the GPU qualifies
  for replacement (RMA);
* rows **remapped in the past**, and the lifetime (aggregate) uncorrectable DRAM errors that caused them, with
  nothing pending and no failure, are the mechanism having worked: healthy (what NVIDIA, gpud and Azure's NHC
  all pass; Azure's ``azure_gpu_ecc.nhc`` fails only on a pending remap, a failure or more than 512 remaps);
* **uncorrectable errors since the driver loaded** (volatile) are still live: the GPU needs a reset (DCGM's
  health check fails them too);
* before A100, **dynamic page retirement** plays the remap's part: retired pages with nothing pending are
  healthy; a page pending retirement waits for a reboot or GPU reset;
* the driver's **recovery action** (``gpu_recovery_action``, R550+; the guide's "Recovery action flag", set
  for uncorrectable errors) says what an uncorrectable error left to do: ``None`` means "the GPU can be
  immediately used again", so errors since the driver loaded with action ``None`` warn; ``Reset``, ``Reboot``
  and the drains fail with that action; without the flag (older drivers) such errors fail, as DCGM's;
* SRAM errors cannot be remapped: NVIDIA's ``sram_threshold_exceeded`` flag (R550+) says when they pass its
  replacement threshold; newer drivers (v13 DTD) add ``channel_repair_pending``/``tpc_repair_pending``
  (waiting for a reset) and ``unrepairable_memory`` (replace).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.gpu.smi import SmiGpu


@dataclass(frozen=True)
class EccFinding:
    """What one GPU's memory state says: what fails (reset or replace), what warns, the healthy history."""

    fails: list[str]
    warns: list[str]
    history: str


def ecc_findings(gpu: SmiGpu) -> EccFinding | None:
    """One GPU's memory judged as NVIDIA's GPU memory error management guide says; None when nvidia-smi
    reports none of it (a GeForce card: ECC ``N/A``).

    NVIDIA (docs.nvidia.com/deploy/a100-gpu-mem-error-mgmt, "Row Remapping", "Error Recovery and Response
    Flags", "RMA Policy Thresholds"; nvmlDeviceGetRemappedRows): a pending remap happens at the next GPU reset;
    a failed remap means the GPU is out of spare rows and qualifies for replacement; a row remapped after an
    uncorrectable error is that error handled, so remapped rows and the lifetime (aggregate) DRAM count they
    came from, with nothing pending and no failure, are healthy. Before A100 dynamic page retirement plays the
    same part: retired pages with nothing pending are healthy, a pending one waits for a reboot."""
    known = (
        gpu.volatile_uncorrectable,
        gpu.aggregate_uncorrectable,
        gpu.remap_pending,
        gpu.remap_failure,
        gpu.retirement_pending,
        gpu.ecc_mode,
    )
    acted = gpu.recovery_action not in (None, "None")
    if all(value is None for value in known) and not (gpu.repair_pending or gpu.unrepairable_memory or acted):
        return None
    fails, warns = [], []
    if gpu.remap_failure:
        fails.append("a row remap failed: the GPU is out of spare rows (NVIDIA: replace it)")
    if gpu.unrepairable_memory:
        fails.append("its memory has faults no repair can cover (NVIDIA: replace it)")
    if gpu.sram_threshold_exceeded:
        fails.append("its SRAM errors passed NVIDIA's replacement threshold (sram_threshold_exceeded)")
    if gpu.remap_pending:
        fails.append("a row remap is pending until the GPU is reset")
    fails += [f"a {part} repair is pending until the GPU is reset" for part in gpu.repair_pending]
    if gpu.retirement_pending:
        fails.append("a page retirement is pending until the GPU is reset or the node rebooted")
    if gpu.recovery_action is not None and gpu.recovery_action != "None":
        fails.append(f"the driver asks for recovery action {gpu.recovery_action!r} (gpu_recovery_action)")
    if gpu.volatile_uncorrectable and gpu.recovery_action == "None":
        warns.append(
            f"{gpu.volatile_uncorrectable} uncorrectable ECC errors since the driver loaded, recovered (recovery "
            "action None: usable again, NVIDIA says)"
        )
    elif gpu.volatile_uncorrectable:
        fails.append(f"{gpu.volatile_uncorrectable} uncorrectable ECC errors since the driver loaded")
    history = _memory_history(gpu)
    unexplained = _unexplained_aggregate(gpu)
    if unexplained and not gpu.volatile_uncorrectable:
        warns.append(unexplained)
    if gpu.ecc_mode == "Disabled":
        warns.append("ECC is disabled")
    return EccFinding(fails, warns, history)


def _memory_history(gpu: SmiGpu) -> str:
    """The past repairs a healthy GPU carries: ``3 rows remapped``, ``2 pages retired``; empty when none."""
    parts = []
    if gpu.remapped_uncorrectable:
        parts.append(f"{gpu.remapped_uncorrectable} rows remapped")
    if gpu.retired_pages:
        parts.append(f"{gpu.retired_pages} pages retired")
    return ", ".join(parts)


def _unexplained_aggregate(gpu: SmiGpu) -> str | None:
    """Lifetime uncorrectable errors that no remap or retirement record accounts for; None when accounted for.

    DRAM errors are handled by row remapping (A100+: ``remapped_rows`` reported) or page retirement (before:
    ``retired_pages`` reported); when the GPU reports neither (MIG instances hide the remap counts) the DRAM
    history cannot be judged and warns. SRAM cannot be remapped: NVIDIA's threshold flag
    (``sram_threshold_exceeded``, R550+) decides, and below it the history is the error-containment working."""
    dram = gpu.aggregate_dram_uncorrectable or 0
    remaps_reported = gpu.remap_pending is not None or gpu.remapped_uncorrectable is not None
    retirement_reported = gpu.retired_pages is not None
    if dram and not (remaps_reported or retirement_reported):
        return (
            f"{dram} uncorrectable DRAM errors over its life, and no row remap or page retirement record to say "
            "they were handled"
        )
    sram = gpu.aggregate_sram_uncorrectable or 0
    if sram and gpu.sram_threshold_exceeded is None:
        return f"{sram} uncorrectable SRAM errors over its life (no threshold flag from this driver to judge them by)"
    return None
