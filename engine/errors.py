"""Errors a job reports to the person as they are, without a traceback."""


class EngineError(RuntimeError):
    """A job cannot go on; the message says what is wrong and where."""
