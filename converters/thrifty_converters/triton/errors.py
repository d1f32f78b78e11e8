"""Exceptions raised by the Triton helpers: invalid input versus a failing server."""

from __future__ import annotations


class TritonError(Exception):
    """Base class of every error raised by `thrifty_converters.triton`."""


class InvalidModelConfigError(TritonError, ValueError):
    """A config.pbtxt or a variant cannot be served: it breaks the ModelConfig schema or its semantics."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        detail = "; ".join(self.problems)
        super().__init__(f"{message}: {detail}" if detail else message)


class ServerError(TritonError, RuntimeError):
    """tritonserver is missing, failed to start, or did not become ready."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        self.log_tail = log_tail
        super().__init__(f"{message}\n--- tritonserver log tail ---\n{log_tail}" if log_tail else message)
