"""Earshot's shared core: recording format and I/O, label taxonomy, audio
features, wire protocol, config plumbing. Imports nothing else of the project."""
