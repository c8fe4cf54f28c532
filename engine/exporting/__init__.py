"""Piecewise export: the stored file's chain (label, loudness, limiter, watermark, encode) as a stream."""

from engine.exporting.chain import BLOCK, LEAD_MAX_S, LEAD_S, MIN_LOUDNESS_S, PEAK_DBFS, PieceExporter

__all__ = ["BLOCK", "LEAD_MAX_S", "LEAD_S", "MIN_LOUDNESS_S", "PEAK_DBFS", "PieceExporter"]
