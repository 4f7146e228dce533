"""The composition root: the processes (CLI, web, Socket Mode, workers, the sandbox runner), the
embedded Redis and the Slack manifest. The only package that builds the registry and wires the layers."""
