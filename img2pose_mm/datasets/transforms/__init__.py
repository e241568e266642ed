"""Registered in mmdet registries on import."""
