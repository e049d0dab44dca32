"""How long NCCL keeps retrying a dead link before its errors can name it (``NCCL_IB_TIMEOUT``,
``NCCL_IB_RETRY_CNT``): the first-day check of docs/first-day.md, "5. The IB retry settings".

NCCL gives each queue pair the verbs ``timeout`` and ``retry_cnt`` it reads from these two variables
(``src/transport/net_ib``: ``qpAttr.timeout = ncclParamIbTimeout()``, ``qpAttr.retry_cnt =
ncclParamIbRetryCnt()``). The adapter waits 4.096 us x 2^timeout for an acknowledgement and tries retry_cnt + 1
times before it completes the work with IBV_WC_RETRY_EXC_ERR (status 12), the error whose log line names the
peer (``bench.frame.postmortem``). A timeout of 0 is infinite in the InfiniBand specification; the fields are 5
and 3 bits wide, so 31 and 7 are the most a queue pair takes.

NCCL's default timeout depends on its release (:data:`IB_TIMEOUT_DEFAULTS`), so the check reads the version
from the NCCL log it was given, else from the library this node's torch loads
(``bench.preflight.nccl_library``). The wait is weighed against the step's ``--timeout`` together with what
follows NCCL's error before the link is named: torch's abort of the communicator and railbench's post-mortem.
"""

from __future__ import annotations

from bench.preflight.check_base import Check, CheckResult, Context
from bench.preflight.nccl_library import major_minor, nccl_version
from bench.runtime.before_init import DUMP_WAIT_MS, DUMP_WAIT_VAR
from bench.runtime.deadlines import DEFAULT_TIMEOUT_S, POSTMORTEM_COLLECT_S

IB_TIMEOUT_DEFAULTS: tuple[tuple[tuple[int, int], int], ...] = (((2, 23), 20), ((2, 14), 18), ((0, 0), 14))
"""NCCL's default ``NCCL_IB_TIMEOUT`` from each release on, newest first: ``NCCL_PARAM(IbTimeout, "IB_TIMEOUT",
...)`` is 14 up to 2.13, 18 from 2.14.3 and 20 from 2.23.4 (``src/transport/net_ib.cc`` at tags v2.13.4-1,
v2.14.3-1, v2.22.3-1 and v2.23.4-1; ``src/transport/net_ib/connect.cc`` since the file was split): a dead link
costs 0.5 s, 8.6 s or 34 s of retries at ``NCCL_IB_RETRY_CNT`` 7, its default in every release."""
RETRY_CNT_DEFAULT = 7
LIMITS = {"NCCL_IB_TIMEOUT": 31, "NCCL_IB_RETRY_CNT": 7}
"""The widths of the verbs fields (5 and 3 bits)."""
ACK_UNIT_S = 4.096e-6
NCCL_DEFAULT = "NCCL's default"
TORCH_DUMP_WAITS = 4
"""torch waits this many times ``TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC`` before it ends a failed communicator
(``bench.runtime.before_init.DUMP_WAIT_MS``)."""


def give_up_s(timeout: int, retry_cnt: int) -> float:
    """Seconds an adapter retries an unanswered send before it fails the work."""
    return ACK_UNIT_S * 2**timeout * (retry_cnt + 1)


def default_ib_timeout(version: str | None) -> int:
    """NCCL's default ``NCCL_IB_TIMEOUT`` for ``version`` (the newest release's where it is unknown)."""
    release = major_minor(version)
    if release is None:
        return IB_TIMEOUT_DEFAULTS[0][1]
    return next(value for since, value in IB_TIMEOUT_DEFAULTS if release >= since)


def nccl_version_seen(ctx: Context) -> tuple[str | None, str]:
    """The NCCL version the check speaks of and where it was read: the oldest the given NCCL logs print, else
    the library this node's torch loads; (None, "") where neither says."""
    logged = [f.value for log in ctx.logs for f in log.version_facts if major_minor(f.value) is not None]
    if logged:
        return min(logged, key=lambda v: major_minor(v) or (0, 0)), "from the NCCL log"
    installed = nccl_version()
    return (installed, "installed") if major_minor(installed) is not None else (None, "")


def after_error_s(dump_wait_ms: str | None) -> float:
    """Seconds between NCCL's completion error and the link named: torch's abort (its dump wait, the site's
    ``TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC`` or railbench's), then the post-mortem's longest wait for the posts."""
    text = dump_wait_ms if dump_wait_ms is not None else DUMP_WAIT_MS
    try:
        dump_s = max(0, int(text.strip())) / 1000
    except ValueError:
        dump_s = int(DUMP_WAIT_MS) / 1000
    return TORCH_DUMP_WAITS * dump_s + POSTMORTEM_COLLECT_S


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


class IbRetry(Check):
    name = "nccl-ib-retry"

    def applies(self, ctx: Context) -> str | None:
        if not ctx.profile.uses_ib_verbs:
            return f"profile {ctx.profile.name} uses {ctx.profile.transport}, not IB verbs"
        return None

    def run(self, ctx: Context) -> list[CheckResult]:
        version, where = nccl_version_seen(ctx)
        defaults = {"NCCL_IB_TIMEOUT": default_ib_timeout(version), "NCCL_IB_RETRY_CNT": RETRY_CNT_DEFAULT}
        whose = {
            "NCCL_IB_TIMEOUT": f"NCCL {version}'s default, {where}"
            if version
            else "NCCL's default from 2.23, 18 before: NCCL's version unknown here"
        }
        values: dict[str, int] = {}
        said: list[str] = []
        for name, default in defaults.items():
            text = ctx.env.get(name)
            if text is None or not text.strip():
                values[name] = default
                said.append(f"{name} {default} ({whose.get(name, NCCL_DEFAULT)})")
                continue
            try:
                values[name] = int(text.strip(), 0)
            except ValueError:
                return [self.result("fail", f"{name}={text.strip()[:20]!r} is not a number: unset it ({default})")]
            if not 0 <= values[name] <= LIMITS[name]:
                return [
                    self.result(
                        "fail",
                        f"{name}={values[name]} is outside 0-{LIMITS[name]}, which a queue pair takes: NCCL fails "
                        f"to connect; unset it ({default})",
                    )
                ]
            said.append(f"{name} {values[name]}")
        return [self._judged(ctx, values["NCCL_IB_TIMEOUT"], values["NCCL_IB_RETRY_CNT"], ", ".join(said))]

    def _judged(self, ctx: Context, timeout: int, retries: int, said: str) -> CheckResult:
        """The verdict on the settings ``said``: NCCL's retries, then torch's abort and the post-mortem, all
        inside the step's ``--timeout``, or the dead link ends the step as an unnamed hang."""
        if timeout == 0:
            return self.result(
                "fail",
                f"{said}: 0 is an infinite timeout, so NCCL never reports a dead link; a job over it hangs until "
                "torch's watchdog ends it, unnamed",
            )
        wait, after = give_up_s(timeout, retries), after_error_s(ctx.env.get(DUMP_WAIT_VAR))
        if wait + after >= ctx.step_timeout_s:
            step = (
                f"{DEFAULT_TIMEOUT_S:.0f} s by default"
                if ctx.step_timeout_s == DEFAULT_TIMEOUT_S
                else f"{ctx.step_timeout_s:g} s"
            )
            return self.result(
                "warn",
                f"{said}: NCCL retries a dead link for {_seconds(wait)}, and torch's abort and railbench's "
                f"post-mortem take up to {_seconds(after)} more before the link is named: longer than a railbench "
                f"step's --timeout ({step}), so the step ends as a hang before NCCL's errors can name the link; "
                "lower NCCL_IB_TIMEOUT (18-22) or raise --timeout",
            )
        return self.result("pass", f"{said}: NCCL gives up on a dead link after {_seconds(wait)}")
