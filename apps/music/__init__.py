"""The music application."""
