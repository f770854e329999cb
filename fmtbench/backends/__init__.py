"""One module per deployment format; see base.py for the interface."""
