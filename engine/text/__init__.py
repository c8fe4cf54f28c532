"""Text frontend."""
