"""forged: the AI Forge daemon, its socket API, its store, its job runner and the `forge` CLI.

Nothing imported from this package at start-up may pull in torch, transformers, unsloth,
mlx or litellm: those live in the `engine` child processes.
"""

__version__ = "0.1.0"
