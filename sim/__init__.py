"""Earshot sim package."""
