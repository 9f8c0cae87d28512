"""Helpers for plugin authors: image loading, dataset layouts, weights files, the threat model, backbone checks,
option checks."""
