"""Filters: one module per family (length, score, site, style, clean). See :mod:`lima_data.filters.base`."""

from .base import REGISTRY, Filter, build_filter

__all__ = ["REGISTRY", "Filter", "build_filter"]
