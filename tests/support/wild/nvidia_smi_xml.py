"""railbench's reading of one ``nvidia-smi -q -x`` document (``bench.gpu.smi``) and what its GPU checks decide.

Per GPU, in nvidia-smi's (PCI bus) order: its PCI address as sysfs writes it, its name, the memory state
(ECC mode, uncorrectable errors since the driver loaded, lifetime DRAM and SRAM ones, rows remapped, a pending
or failed remap, a pending retirement and the pages retired), the active clock event reasons, the SM clock and
the core temperature at the time of the document, MIG and the
NVSwitch fabric state, and the verdict of ``gpu-ecc``, ``gpu-clocks`` and ``fabric-manager`` on that GPU alone
with the words that carry it. A value nvidia-smi does not report (``N/A``, ``[N/A]``, absent) reads
``"unknown"`` (TOML has no null).
"""

from __future__ import annotations

from pathlib import Path

from bench.gpu.ecc import ecc_findings
from bench.gpu.smi import SmiGpu, parse_report
from bench.preflight.gpu_checks import clock_verdict, fabric_verdict

UNKNOWN = "unknown"


def _v(value: object) -> object:
    return UNKNOWN if value is None else value


def _ecc(gpu: SmiGpu) -> tuple[str, str]:
    finding = ecc_findings(gpu)
    if finding is None:
        return "skip", "no ECC state reported"
    status = "fail" if finding.fails else "warn" if finding.warns else "pass"
    said = "; ".join(finding.fails + finding.warns) or finding.history
    return status, said


def _gpu(gpu: SmiGpu) -> dict[str, object]:
    ecc, ecc_why = _ecc(gpu)
    clocks, held = clock_verdict(gpu)
    return {
        "pci": gpu.pci,
        "name": _v(gpu.name),
        "ecc_mode": _v(gpu.ecc_mode),
        "volatile_uncorrectable": _v(gpu.volatile_uncorrectable),
        "aggregate_dram_uncorrectable": _v(gpu.aggregate_dram_uncorrectable),
        "aggregate_sram_uncorrectable": _v(gpu.aggregate_sram_uncorrectable),
        "rows_remapped_uncorrectable": _v(gpu.remapped_uncorrectable),
        "remap_pending": _v(gpu.remap_pending),
        "remap_failure": _v(gpu.remap_failure),
        "retirement_pending": _v(gpu.retirement_pending),
        "retired_pages": _v(gpu.retired_pages),
        "clock_events_active": list(gpu.clock_events),
        "sm_clock_MHz": _v(gpu.sm_clock_MHz),
        "temperature_C": _v(gpu.temperature_C),
        "mig": _v(gpu.mig_current),
        "fabric_state": _v(gpu.fabric_state),
        "gpu_ecc": ecc,
        "gpu_ecc_why": ecc_why,
        "gpu_clocks": clocks,
        "gpu_clocks_why": ", ".join(held),
        "fabric_manager": fabric_verdict(gpu),
    }


def read(path: Path) -> dict[str, object]:
    report = parse_report(path.read_bytes(), path.name)
    return {"driver": _v(report.driver), "gpus": [_gpu(g) for g in report.gpus]}
