"""Plain-text tables for the command line."""

from __future__ import annotations


def format_table(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; the first row is the header, underlined."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
