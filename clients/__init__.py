"""Clients of the systems outside the bot: Azure (Run Command, the VM resource), GitHub, Gemini,
the health endpoints, the executors that run a script, and the run-command result. Each imports its SDK
where it is used, so that naming a client loads no SDK."""
