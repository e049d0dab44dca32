"""How long NCCL keeps retrying a dead link before its errors can name it (``NCCL_IB_TIMEOUT``,
``NCCL_IB_RETRY_CNT``): the first-day check of docs/first-day.md, "5. The IB retry settings".

NCCL gives each queue pair the verbs ``timeout`` and ``retry_cnt`` it reads from these two variables
(``src/transport/net_ib``: ``qpAttr.timeout = ncclParamIbTimeout()``, ``qpAttr.retry_cnt =
ncclParamIbRetryCnt()``; defaults 20 and 7). The adapter waits 4.096 us x 2^timeout for an acknowledgement and
tries retry_cnt + 1 times before it completes the work with IBV_WC_RETRY_EXC_ERR (status 12), the error whose
log line names the peer (``bench.frame.postmortem``). A timeout of 0 is infinite in the InfiniBand
specification; the fields are 5 and 3 bits wide, so 31 and 7 are the most a queue pair takes.
"""

from __future__ import annotations

from bench.preflight.check_base import Check, CheckResult, Context
from bench.runtime.deadlines import DEFAULT_TIMEOUT_S

DEFAULTS = {"NCCL_IB_TIMEOUT": 20, "NCCL_IB_RETRY_CNT": 7}
"""NCCL's defaults (``NCCL_PARAM(IbTimeout, "IB_TIMEOUT", 20)``, ``NCCL_PARAM(IbRetryCnt, "IB_RETRY_CNT", 7)``)."""
LIMITS = {"NCCL_IB_TIMEOUT": 31, "NCCL_IB_RETRY_CNT": 7}
"""The widths of the verbs fields (5 and 3 bits)."""
ACK_UNIT_S = 4.096e-6


def give_up_s(timeout: int, retry_cnt: int) -> float:
    """Seconds an adapter retries an unanswered send before it fails the work."""
    return ACK_UNIT_S * 2**timeout * (retry_cnt + 1)


class IbRetry(Check):
    name = "nccl-ib-retry"

    def applies(self, ctx: Context) -> str | None:
        if not ctx.profile.uses_ib_verbs:
            return f"profile {ctx.profile.name} uses {ctx.profile.transport}, not IB verbs"
        return None

    def run(self, ctx: Context) -> list[CheckResult]:
        values: dict[str, int] = {}
        said: list[str] = []
        for name, default in DEFAULTS.items():
            text = ctx.env.get(name)
            if text is None or not text.strip():
                values[name] = default
                said.append(f"{name} {default} (NCCL's default)")
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
        timeout, retries = values["NCCL_IB_TIMEOUT"], values["NCCL_IB_RETRY_CNT"]
        if timeout == 0:
            return [
                self.result(
                    "fail",
                    f"{', '.join(said)}: 0 is an infinite timeout, so NCCL never reports a dead link; "
                    "a job over it hangs until torch's watchdog ends it, unnamed",
                )
            ]
        wait = give_up_s(timeout, retries)
        if wait >= DEFAULT_TIMEOUT_S:
            return [
                self.result(
                    "warn",
                    f"{', '.join(said)}: NCCL retries a dead link for {wait:.0f} s, longer than a railbench step's "
                    f"--timeout ({DEFAULT_TIMEOUT_S:.0f} s by default): the step ends as a hang before NCCL's "
                    "errors can name the link; lower NCCL_IB_TIMEOUT (20-22) or raise --timeout",
                )
            ]
        return [self.result("pass", f"{', '.join(said)}: NCCL gives up on a dead link after {wait:.0f} s")]
