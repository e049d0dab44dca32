"""``railbench check``'s error checks: each rail's error counters over a short idle window, and link flaps.

* ``rail-errors`` samples every rail's error counters (its IB port's and its netdev's, or a socket rail's
  interface's) twice, ``[errors] window_s`` apart (``--error-window``); a copied tree (``--sysfs-root`` other
  than ``/sys``) is read once, without the wait, unless ``--error-window`` is given. A counter in ``fail_on_rise`` that
  rose fails the rail, any other error counter that rose warns; a counter stuck at its IBA maximum warns
  (it cannot count any more); a count above ``[errors.max_count]`` is flagged with ``max_count_severity``.
  Otherwise the rail passes with its counts.
* ``link-flaps`` reads the kernel log (``--kernel-log``, the journal, kern.log or syslog) for link-loss lines
  naming a rail's netdev (or its HCA) within ``[errors] kernel_log_window_s``; skipped, with the reason,
  when no log can be read, and when the sysfs tree is a copy and no log was given with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from bench.fabric import error_counters, hca, link_flaps
from bench.preflight.check_base import Check, CheckResult, Context, listed
from bench.profile.errors import ErrorLimits


@dataclass(frozen=True)
class Rail:
    """A rail as the error checks see it: the devices whose counters speak for it."""

    name: str
    """``mlx5_1:1`` or an interface."""
    devices: tuple[str, ...]
    """Counter devices: the IB port and its netdev, or the interface."""
    log_names: tuple[str, ...]
    """Words that name it in the kernel log: its netdev, its HCA."""


def rails(ctx: Context) -> list[Rail]:
    """The node's rails: IB/RoCE ports on an IB-verbs profile, the rail interfaces on a socket profile."""
    if ctx.profile.uses_ib_verbs:
        return [
            Rail(p.name, (p.name, *((p.netdev,) if p.netdev else ())), (*((p.netdev,) if p.netdev else ()), p.device))
            for p in ctx.rails
        ]
    if ctx.profile.transport == "socket":
        names = list(ctx.profile.rail_names) or hca.select_ifnames(
            ctx.profile.socket_ifnames or "", [n.name for n in ctx.nets]
        )
        return [Rail(n, (n,), (n,)) for n in names]
    return []


def _rails_or_why_not(ctx: Context) -> str | None:
    if ctx.profile.transport == "loopback":
        return "loopback profile: no rail to watch"
    if not rails(ctx):
        return "no rail on this node (see rail-count / socket-rail)"
    return None


class RailErrorWindow(Check):
    name = "rail-errors"

    def applies(self, ctx: Context) -> str | None:
        return _rails_or_why_not(ctx)

    def run(self, ctx: Context) -> list[CheckResult]:
        limits = ctx.profile.errors
        window = limits.window_s if ctx.error_window_s is None else ctx.error_window_s
        # A copied tree (--sysfs-root) is a snapshot: nothing rises in it while we wait, so the profile's window
        # would be seconds spent to learn nothing. It is read once; --error-window still samples it twice.
        copy = not ctx.live and ctx.error_window_s is None
        found = rails(ctx)
        devices = [d for r in found for d in r.devices]
        first = error_counters.read(ctx.sysfs, only=devices)
        if not first:
            return [
                self.result("skip", f"no error counters for {listed([r.name for r in found])} under {ctx.sysfs.root}")
            ]
        if copy:
            return [self.judge(rail, error_counters.delta(first, first), first, None, limits) for rail in found]
        ctx.sleep(window)
        second = error_counters.read(ctx.sysfs, only=devices)
        window_errors = error_counters.delta(first, second)
        return [self.judge(rail, window_errors, second, window, limits) for rail in found]

    def judge(
        self,
        rail: Rail,
        window_errors: Mapping[str, error_counters.DeviceErrors],
        now: error_counters.Readings,
        window: float | None,
        limits: ErrorLimits,
    ) -> CheckResult:
        """One rail's verdict from its devices' error deltas over the window and their counts at its end
        (``window`` None: one reading of a copied tree, so only the counts speak)."""
        measured = [window_errors[d] for d in rail.devices if d in window_errors]
        if not measured:
            return self.on_device("skip", rail.name, "no error counters")
        fails: list[str] = []
        warns: list[str] = []
        for errors in measured:
            _device_findings(rail, errors, now, limits, fails, warns)
        during = f"during a {window:g} s idle window" if window is not None else "one reading of a copied tree"
        if fails:
            return self.on_device("fail", rail.name, "; ".join(fails + warns) + f" ({during})")
        if warns:
            return self.on_device("warn", rail.name, "; ".join(warns) + f" ({during})")
        counts = [f"{n} {v}" for d in rail.devices for n, v in now.get(d, {}).items() if v]
        shown = f"counts since cleared: {listed(counts, 6)}" if counts else "every error counter at 0"
        if window is None:
            said = f"{shown} ({during}: no idle window; --error-window samples it twice)"
            return self.on_device("pass", rail.name, said)
        return self.on_device("pass", rail.name, f"no error counter rose {during}; {shown}")


class LinkFlaps(Check):
    name = "link-flaps"

    def applies(self, ctx: Context) -> str | None:
        return _rails_or_why_not(ctx) or ctx.kernel_log_missing()

    def run(self, ctx: Context) -> list[CheckResult]:
        window = ctx.profile.errors.kernel_log_window_s
        now = ctx.now()
        since = now - timedelta(seconds=window)
        log = link_flaps.read_kernel_log(ctx.kernel_log, since)
        if log.skipped is not None:
            return [self.result("skip", f"kernel log not read: {log.skipped}")]
        found = rails(ctx)
        names = [n for r in found for n in r.log_names]
        seen = link_flaps.flaps(log.lines, names, since, now)
        out = []
        for rail in found:
            mine = [f for f in seen if f.device in rail.log_names]
            if mine:
                latest = mine[-1]
                out.append(
                    self.on_device(
                        "fail",
                        rail.name,
                        f"{len(mine)} link-flap line{'s' if len(mine) > 1 else ''} in {log.source} in the "
                        f"last {window:g} s, latest at {latest.when:%Y-%m-%d %H:%M:%S}: {latest.line.strip()[:160]}",
                    )
                )
        if not out:
            said = f"no link flap on {len(found)} rails in {log.source} in the last {window:g} s"
            out.append(self.result("pass", said))
        return out


def _device_findings(
    rail: Rail,
    errors: error_counters.DeviceErrors,
    now: error_counters.Readings,
    limits: ErrorLimits,
    fails: list[str],
    warns: list[str],
) -> None:
    """One device's rises, saturated and cleared counters and counts over the profile's limits, each added to
    ``fails`` or ``warns`` as the profile's ``[errors]`` says (a rail's devices add to the same two lists)."""
    prefix = "" if errors.device == rail.name else f"{errors.device} "
    for name, rise in errors.risen.items():
        (fails if name in limits.fail_on_rise else warns).append(f"{prefix}{name} +{rise}")
    for name in errors.saturated:
        top = now[errors.device][name]
        warns.append(f"{prefix}{name} saturated at {top} (clear the port's counters to count again)")
    for name in errors.reset:
        warns.append(f"{prefix}{name} was cleared during the window")
    for name, limit in limits.max_count.items():
        value = now[errors.device].get(name)
        if value is not None and value > limit and name not in errors.saturated:
            severe = fails if limits.max_count_severity == "fail" else warns
            severe.append(f"{prefix}{name} = {value}, above the profile's {limit}")
