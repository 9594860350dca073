"""The translation application."""
