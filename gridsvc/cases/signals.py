"""Signals of the cases app."""
