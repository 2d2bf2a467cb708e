"""The runner, tracking, studies and reports of diffres-bench (see README)."""
