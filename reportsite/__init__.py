"""reportsite: a static site generator for annual rule-of-law government reports."""

__version__ = "0.1.0"
