"""The contract between forge's parts, with no part of its own: the wire models of the socket
API (`schema`), the job kinds and their params (`jobs`), the one deploy-mode rule
(`deploy_mode`) and the one check of a training example (`examples`).

The daemon (`forged`), the engine (`engine`), the agent (`agent`) and the TUI (`tui`) import
it; it imports none of them, so none of them has to import another for a shared definition.
Light by rule: pydantic and the standard library only (the daemon and the CLI start on it).
"""
