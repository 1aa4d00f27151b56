"""Self-contained HTML reports of dcequant (figures embedded as base64 PNG)."""

from .subject import write_subject_report

__all__ = ["write_subject_report"]
