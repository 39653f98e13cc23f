"""engine: everything that touches model weights, run as `python -m engine <run-dir>/spec.json`.

The job kinds and their params are the contract's (`forge_api.jobs`). The daemon imports a few
light modules of this package (dataset checks, checkpoint names, model folder inspection, the
Ollama client's helpers) and nothing else; torch, transformers and friends are imported inside
the job modules, in the child process. Nothing here imports the daemon.
"""
