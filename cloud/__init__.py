"""Earshot cloud package."""
