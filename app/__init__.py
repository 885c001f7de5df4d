"""Oddscope desktop front end (Qt). Shows and asks; the work happens in oddscope.core."""
