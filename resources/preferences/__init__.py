"""Preference-related data resources (considerations table for query expansion)."""
