"""Markdown helpers for report.md."""


def table(headers, rows, align=None):
    """A Markdown table; align is a string of 'l'/'r' per column (default: first left)."""
    if align is None:
        align = "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines) + "\n"


def image(title, filename):
    return f"\n![{title}]({filename})\n"


def fmt_num(v, digits=1):
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"
