"""agent: the Antigravity agent (repository watchers, dataset builders, secret filter, mission
policy, optional LLM advisor). It arrives with the agent issue; the daemon does not use it yet."""
