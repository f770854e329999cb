"""The Markdown report: tables, plots and findings computed from the result JSONs."""
