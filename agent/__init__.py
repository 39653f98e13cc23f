"""agent: the Antigravity agent's library: reading watched repositories safely (`safe_git`),
the watcher, dataset builders and their secret filter, token fitting, the mission policy and the
optional LLM advisor. The daemon's `forged.source_scanner` and `forged.mission_chain` drive it;
nothing here imports the daemon."""
