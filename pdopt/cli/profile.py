"""`pdopt profile ...`: build instance-type blocks from benchmark results (docs/profiles.md).

One function per subcommand, all registered on the `profile` group.
"""

from __future__ import annotations

import click


@click.group()
def profile() -> None:
    """Build scenario instance types from benchmark results (docs/profiles.md)."""
