"""The failures a run can end in, each printed as one line with its own exit status.

| status | class | meaning |
|---|---|---|
| 2 | :class:`ServiceError` | a problem the user can fix: parameter, input, model, destination |
| 3 | :class:`EnvironmentFailure` | the machine or a service it needs failed: disk full, object store not answering |
| 128 + signal | :class:`Interrupted` | stopped by SIGTERM (143, how Kubernetes stops a pod) or SIGINT (130) |

Every front end (command line, KFP component, gRPC, web) reports them through
:func:`components.common.contract.guarded`, and nothing half-written is left behind.
"""

from __future__ import annotations

import errno
import signal


class ServiceError(Exception):
    """A problem with the inputs or parameters that the user can fix."""

    exit_code = 2

    def one_line(self) -> str:
        return " ".join(str(self).split())


class InvalidParameter(ServiceError):
    """A parameter value outside what the service accepts."""

    def __init__(self, name: str, value, allowed: str):
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"invalid value {value!r} for parameter '{name}': allowed {allowed}")


class EnvironmentFailure(ServiceError):
    """Not the user's input: the disk is full, the object store does not answer, ..."""

    exit_code = 3


class Interrupted(BaseException):
    """The process was asked to stop (a ``BaseException``, so that no ``except Exception`` on the
    way swallows it; cleanup code in ``finally`` and context managers runs as it propagates)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    def one_line(self) -> str:
        return str(self)


# OSError numbers that mean the machine, not the user's input, failed
_ENVIRONMENT_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                       errno.EIO: "input/output error", errno.ENOMEM: "out of memory"}


def from_os_error(exc: OSError, doing: str) -> ServiceError:
    """The one-line failure for an ``OSError`` met while ``doing`` ("writing /out/x.tif"):
    an :class:`EnvironmentFailure` for a full disk and the like, else a :class:`ServiceError`."""
    reason = _ENVIRONMENT_ERRNOS.get(exc.errno)
    if reason:
        return EnvironmentFailure(f"{doing}: {reason}")
    return ServiceError(f"{doing}: {exc.strerror or exc}")
