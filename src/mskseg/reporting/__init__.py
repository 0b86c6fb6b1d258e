"""Reporting: summary tables of metrics (Markdown, LaTeX, CSV) and figures.

:mod:`mskseg.reporting.tables` summarises metrics frames into papers' tables, marked with
the significance tests of :mod:`mskseg.stats`; :mod:`mskseg.reporting.plots` draws box
plots, field-of-view curves and power-law fits.
"""
