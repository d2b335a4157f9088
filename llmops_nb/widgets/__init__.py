"""Notebook panels: anywidget classes with hand-written ESM beside them in static/,
each with a static HTML fallback for reports and frontends without widgets."""
