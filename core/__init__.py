"""Oddscope engine: everything a scientist can script without Qt."""
