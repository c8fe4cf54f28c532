"""Upstream GPT-SoVITS's g2pW polyphone reader (``../shared/reference/gpt-sovits/G2PW.md``), our own code."""

from engine.text.g2pw.converter import G2PWConverter, Switches
from engine.text.g2pw.folder import HOW_TO_GET, ZIP_URL, check_folder, missing_files

__all__ = ["G2PWConverter", "HOW_TO_GET", "Switches", "ZIP_URL", "check_folder", "missing_files"]
