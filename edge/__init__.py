"""Earshot edge package."""
