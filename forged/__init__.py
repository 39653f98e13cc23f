"""forged: the AI Forge daemon: its socket API, its store, its job runner and its agent.

Nothing imported from this package at start-up may pull in torch, transformers, unsloth,
mlx or litellm: those live in the `engine` child processes.
"""

from forge_api.version import VERSION as __version__

__all__ = ["__version__"]
