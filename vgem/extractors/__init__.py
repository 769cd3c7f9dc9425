"""Verb / object extraction from a query (plugins in ``vgem.extractors``)."""

from vgem.extractors.base import Extraction, Extractor

__all__ = ["Extraction", "Extractor"]
