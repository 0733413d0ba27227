"""Writes a benchmark's markdown table between `<!-- NAME:begin ... -->` and `<!-- NAME:end -->`."""

import os
import re
import sys

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def update_sections(tables, path=README):
    """Replaces each section's table in README.md; exits naming a section with no markers."""
    with open(path) as file:
        text = file.read()
    for section, table in tables.items():
        pattern = re.compile(rf"(<!-- {section}:begin[^\n]*-->\n).*?(<!-- {section}:end -->)", re.S)
        if not pattern.search(text):
            sys.exit(f"README.md has no {section}:begin/end markers.")
        text = pattern.sub(lambda m, table=table: m.group(1) + table + m.group(2), text)
    # Written beside and renamed into place: an interrupted write never leaves half a README.
    partial = f"{path}.partial"
    with open(partial, "w") as file:
        file.write(text)
    os.replace(partial, path)
    print(f"{path} updated: {', '.join(tables)}")
