"""Models of this domain app."""
