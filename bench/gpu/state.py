"""Where a node's GPU state comes from: nvidia-smi on the node itself, or its output captured in files.

* Files (``check --nvidia-smi FILE...``): ``nvidia-smi -q -x`` and ``nvidia-smi nvlink -s`` outputs, told apart
  by their content; each read through ``bench.bounded`` (a regular file, at most :data:`MAX_FILE_BYTES`). A file
  that is neither is bad input (exit 2), said in one line.
* The tool: on the live node, when ``nvidia-smi`` is on the PATH, it is run with a timeout and its output
  capped (``bench.toolrun``); a failure (no driver, a hung GPU) fails the GPU checks on a node that has GPUs,
  never a pass or a skip; a node without the tool skips them, saying so.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import toolrun
from bench.bounded import InputError, read_bytes
from bench.gpu import nvlink
from bench.gpu.safe_xml import MAX_XML_BYTES
from bench.gpu.smi import SmiRefused, SmiReport, document_span, parse_report
from bench.textlines import printable, text_lines

MAX_FILE_BYTES = MAX_XML_BYTES
QUERY_TIMEOUT_S = 60.0
"""nvidia-smi -q -x on 8 GPUs answers in a few seconds; a GPU that has fallen off the bus can hold it longer."""
NVLINK_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class GpuState:
    """The node's GPU state, or why each part of it is missing."""

    report: SmiReport | None = None
    report_missing: str | None = None
    """Why there is no ``nvidia-smi -q -x`` report (None when there is one)."""
    links: tuple[nvlink.GpuLinks, ...] | None = None
    links_missing: str | None = None
    tool_failed: bool = False
    """nvidia-smi is on this node and ran, and gave no report railbench can read (it failed, hung, or wrote
    something else): on a node with GPUs their checks cannot be judged, which is a failure, not a skip."""


def _is_xml(data: bytes) -> bool:
    """XML by its content: the document may follow text a capture put first (``smi.document_span``)."""
    head = data.lstrip()[:64]
    return head.startswith((b"<?xml", b"<nvidia_smi_log", b"<!DOCTYPE")) or document_span(data) is not None


def from_files(paths: Sequence[Path]) -> GpuState:
    """The state captured in ``paths``; InputError (exit 2) for a file that is not nvidia-smi output."""
    report: SmiReport | None = None
    links: tuple[nvlink.GpuLinks, ...] | None = None
    fix = "give nvidia-smi -q -x or nvidia-smi nvlink -s output"
    for path in paths:
        data = read_bytes(path, fix=fix, label=f"--nvidia-smi {path}", max_bytes=MAX_FILE_BYTES)
        if _is_xml(data):
            try:
                report = parse_report(data, str(path))
            except SmiRefused as exc:
                raise InputError(f"--nvidia-smi: {exc}: {fix}") from None
            continue
        links = _status(path, data.decode("utf-8", errors="replace"), fix)
    names = ", ".join(str(p) for p in paths)
    return GpuState(
        report,
        None if report is not None else f"no nvidia-smi -q -x output among --nvidia-smi {names}",
        links,
        None if links is not None else f"no nvidia-smi nvlink -s output among --nvidia-smi {names}",
    )


def _status(path: Path, text: str, fix: str) -> tuple[nvlink.GpuLinks, ...]:
    """The GPU blocks of ``nvidia-smi nvlink -s`` output in ``text``; InputError naming what it holds instead."""
    kind = nvlink.output_kind(line for _, line in text_lines(text) if line is not None)
    if kind == nvlink.STATUS:
        return nvlink.parse_status(line for _, line in text_lines(text) if line is not None)
    if kind is not None:
        raise InputError(f"--nvidia-smi {path} holds {kind} output, not nvidia-smi nvlink -s: {fix}")
    raise InputError(f"--nvidia-smi {path} is neither nvidia-smi -q -x XML nor nvidia-smi nvlink -s output: {fix}")


def _run(argv: list[str], timeout_s: float) -> tuple[bytes | None, str | None]:
    """(stdout, None) or (None, why it gave none); the tool bounded in time and output (``bench.toolrun``)."""
    try:
        done = toolrun.run_tool(argv, timeout_s, MAX_FILE_BYTES)
    except toolrun.ToolMissing as exc:
        return None, f"cannot run {' '.join(argv)}: {exc.strerror or exc}"
    if not done.ok:
        hung = " (a hung GPU or driver)" if done.timed_out else ""
        return None, done.why_not(timeout_s, MAX_FILE_BYTES) + hung
    return done.stdout, None


def _run_listing(argv: list[str], timeout_s: float) -> tuple[bytes | None, str | None]:
    """Like :func:`_run`, but a listing that finished is read whatever the exit status: a GPU whose links are
    all down makes ``nvidia-smi nvlink -s`` say so through NVML and may end it non-zero, and that GPU is the
    finding, not a tool failure. Its NVML line can come on either stream, so both are read, stdout first."""
    try:
        done = toolrun.run_tool(argv, timeout_s, MAX_FILE_BYTES)
    except toolrun.ToolMissing as exc:
        return None, f"cannot run {' '.join(argv)}: {exc.strerror or exc}"
    if done.ok:
        return done.stdout, None
    both = done.stdout + b"\n" + done.stderr
    if done.timed_out or done.over_cap or not _has_gpu_block(both):
        hung = " (a hung GPU or driver)" if done.timed_out else ""
        return None, done.why_not(timeout_s, MAX_FILE_BYTES) + hung
    return both, None


def _has_gpu_block(data: bytes) -> bool:
    decoded = data.decode("utf-8", errors="replace")
    return bool(nvlink.parse_status(line for _, line in text_lines(decoded) if line is not None))


def from_tool() -> GpuState:
    """The live node's state from ``nvidia-smi`` itself."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        why = "nvidia-smi is not on the PATH (no NVIDIA driver utilities on this node)"
        return GpuState(report_missing=why, links_missing=why)
    report, report_missing = None, None
    data, report_missing = _run([tool, "-q", "-x"], QUERY_TIMEOUT_S)
    if data is not None:
        try:
            report = parse_report(data, "nvidia-smi -q -x")
        except SmiRefused as exc:
            report_missing = str(exc)
    links, links_missing = None, None
    text, links_missing = _run_listing([tool, "nvlink", "-s"], NVLINK_TIMEOUT_S)
    if text is not None:
        decoded = text.decode("utf-8", errors="replace")
        links = nvlink.parse_status(line for _, line in text_lines(decoded) if line is not None)
    # why each part is missing quotes nvidia-smi's own failure line: it reaches the terminal and checks.json
    return GpuState(report, _shown(report_missing), links, _shown(links_missing), tool_failed=report is None)


def _shown(why: str | None) -> str | None:
    return printable(why) if why is not None else None
