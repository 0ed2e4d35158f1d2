"""Integrations of intfa with other libraries."""
