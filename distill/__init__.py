"""Earshot distill package."""
