"""User-facing errors: one clear message each, shown without a traceback in notebooks."""

from __future__ import annotations


class LLMOpsError(Exception):
    """Base class: bad input or an unavailable resource, explained in one message."""

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: one red line naming the problem."""
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class InvalidName(LLMOpsError, ValueError):
    pass


class NotFound(LLMOpsError, LookupError):
    """An unknown prompt, version, alias, dataset, run or trace."""


class PromptSyntaxError(LLMOpsError, ValueError):
    """Malformed front matter, an unknown key or role marker, or a template syntax error."""


class MissingVariable(LLMOpsError, KeyError):
    """Rendering a template without a variable it uses."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StoreUnavailable(LLMOpsError, ConnectionError):
    """The experiment store cannot be opened or reached."""

    kind: str = "store"
    """What failed: 'connection' (lost or refused), 'lock' (contention), 'timeout', 'store'."""


class StoreBusy(StoreUnavailable):
    """The store is reachable, but another connection held a lock longer than allowed."""


class LocalModelError(LLMOpsError, LookupError):
    """A `local/` model that cannot be found or loaded; the message names it and what to do."""


class ModelRegistryError(LLMOpsError, ValueError):
    """Bad input to the model registry: a reserved name, a missing adapter, a wrong hash."""


class FineTuneError(LLMOpsError, ValueError):
    """A fine-tune that cannot start as asked, or a job action that does not apply."""
