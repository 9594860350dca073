"""The voice application."""
