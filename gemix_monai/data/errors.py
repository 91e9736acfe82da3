"""Exceptions of the data layer. Every message names the file, row or key at fault."""

from __future__ import annotations

__all__ = ["DataError", "ImageReadError", "NotASliceError", "DataValidationError"]


class DataError(ValueError):
    """Bad input data: the message says which file/row/key, what was expected and what was found."""


class ImageReadError(DataError):
    """A file exists but cannot be read as the image format its name says it is."""


class NotASliceError(DataError):
    """A 3-D volume arrived where a 2-D slice was expected and no slice was chosen."""


class DataValidationError(DataError):
    """One or more datalist entries are unusable; ``problems`` lists ``(where, reason)`` pairs."""

    #: What the message suggests after the count (``hint=`` replaces it where skipping is not an option).
    HINT = "fix them, or pass on_error='skip' to drop and report them"

    def __init__(self, problems: list[tuple[str, str]], context: str = "datalist", *, hint: str | None = None):
        self.problems = list(problems)
        hint = self.HINT if hint is None else hint
        shown = "\n".join(f"  - {where}: {reason}" for where, reason in self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(
            f"{context}: {len(self.problems)} bad entr{'y' if len(self.problems) == 1 else 'ies'}"
            + (f" ({hint})" if hint else "")
            + f":\n{shown}{more}"
        )
