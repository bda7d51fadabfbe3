"""CLI commands of the fitting engine: demo, fit, predict, plan, bench fit."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the fitting commands to the root app."""
