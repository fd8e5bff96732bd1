"""Errors a user can fix. The CLI prints their message as one line and exits with status 2."""


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
