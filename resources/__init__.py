"""Icons, styles and small data shipped with Oddscope."""
