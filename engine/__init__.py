"""engine: everything that touches model weights, run as `python -m engine <run-dir>/spec.json`.

Only `engine.spec` (pydantic, no heavy imports) is imported by the daemon; torch, transformers
and friends are imported inside the job modules, in the child process.
"""
