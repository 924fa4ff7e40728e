"""`python -m swag` runs the CLI, so workflow rules work in any environment with swag importable."""

from swag.cli import run

run()
