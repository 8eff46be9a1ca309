"""One base error; each subclass carries the exit code the CLI returns for it."""

from __future__ import annotations


class FwsetupError(Exception):
    """A failure a user can act on. The message says what happened and what to do next."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class UsageError(FwsetupError):
    """Bad command-line input (unknown framework, conflicting flags)."""

    exit_code = 2


class ProfileError(FwsetupError):
    """A HostProfile file that cannot be read."""

    exit_code = 2


class RecipeError(FwsetupError):
    """A recipe file that is malformed: names the file, the key and what was expected."""

    exit_code = 2


class PlanRefused(FwsetupError):
    """No build of the framework can run here (the refusal itself is a normal Plan; this is for callers
    that need a plan to go on, such as install)."""

    exit_code = 3


class EngineError(FwsetupError):
    """The Docker engine is missing or unreachable."""

    exit_code = 4


class InstallError(FwsetupError):
    """An install, build or environment creation failed; the target was left as it was."""

    exit_code = 5


class SmokeError(FwsetupError):
    """The smoke test (a real training step) failed inside the environment."""

    exit_code = 6


class NetworkError(FwsetupError):
    """A package index or channel could not be reached."""

    exit_code = 7


class RegistryError(FwsetupError):
    """An image registry refused: credentials missing or refused, a certificate the engine does not trust, or a
    push or pull it did not take (an unreachable registry is a NetworkError, 7)."""

    exit_code = 8
