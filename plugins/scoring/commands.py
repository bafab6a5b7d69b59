"""Placeholder until written (CLI)."""
import click

scoring_group = click.Group("scoring", help="Lead scoring.")
