"""The sentiment application."""
