"""The errors every layer raises for bad input or bad files, each with a message that
says what to fix. Entry points map them to answers: the CLI prints `error: <message>`
and exits 2; the HTTP layer answers 4xx with the message as `detail`."""
from __future__ import annotations


class BadRequest(ValueError):
    """Bad input from a caller (empty query, k out of range, unknown strategy...). HTTP 4xx."""


class IndexError_(ValueError):
    """An index is missing, incomplete or built from other data."""


class DatasetError(ValueError):
    """A dataset is missing, malformed or unknown. The message says what to fix."""
