"""Reporting: overlays, tables, figures and the HTML/Markdown report."""
