#!/usr/bin/python3
"""
gen-config-doc.py - rewrite the option table of docs/configuration.md

    scripts/gen-config-doc.py [IMPETUSD]

Runs `IMPETUSD --list` (default build/impetusd), which prints the table
generated from src/config/conf_options.def, and puts it in place of the
table under "## Options". tests/integration/test_config_doc.py fails while
the page and the binary disagree; run this after changing an option.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "configuration.md")


def table_span(lines):
    """table_span - (first, end) line indexes of the table under '## Options'."""
    start = lines.index("## Options\n")
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("| "))
    end = first
    while end < len(lines) and lines[end].startswith("| "):
        end += 1
    return first, end


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "impetusd")
    table = subprocess.run([exe, "--list"], check=True, capture_output=True,
                           text=True).stdout
    with open(DOC) as f:
        lines = f.readlines()
    first, end = table_span(lines)
    lines[first:end] = table.splitlines(keepends=True)
    with open(DOC + ".new", "w") as f:
        f.writelines(lines)
    os.replace(DOC + ".new", DOC)


if __name__ == "__main__":
    main()
