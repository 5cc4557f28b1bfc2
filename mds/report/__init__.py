"""Figures and a self-contained HTML report for rounds and oracle-replay experiments."""

from mds.report.html import write_html_report
from mds.report.summary import gain_table, summary_tables

__all__ = ["gain_table", "summary_tables", "write_html_report"]
