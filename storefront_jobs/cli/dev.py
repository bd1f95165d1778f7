"""``storefront-jobs dev``: placeholder, replaced below."""

from __future__ import annotations

import click


@click.command()
def dev() -> None:
    """Run the whole platform locally."""
