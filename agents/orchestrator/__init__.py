"""The meta-agent orchestrator: plan sub-tasks, run them on specialist agents in jailed sessions from a pool,
merge their patches in git, run the tests, recover from failures, and record every decision and message."""
