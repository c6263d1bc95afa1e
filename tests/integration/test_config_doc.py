"""
test_config_doc.py - docs/configuration.md lists exactly the options impetusd knows

`impetusd --list` prints the option table generated from
src/config/conf_options.def; the "## Options" table of
docs/configuration.md must be that text, line for line. When this fails,
run scripts/gen-config-doc.py and commit the page.
"""

import os
import subprocess
import sys
import unittest

from harness import SOURCE_DIR, impetusd_path

sys.path.insert(0, os.path.join(SOURCE_DIR, "scripts"))
gen = __import__("gen-config-doc")


class ConfigDocTest(unittest.TestCase):

    def test_option_table_matches_the_binary(self):
        out = subprocess.run([impetusd_path(), "-t", "--list"], capture_output=True,
                             text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        with open(os.path.join(SOURCE_DIR, "docs", "configuration.md")) as f:
            lines = f.readlines()
        first, end = gen.table_span(lines)
        self.assertEqual("".join(lines[first:end]), out.stdout,
                         "docs/configuration.md's option table is stale: "
                         "run scripts/gen-config-doc.py")
        # Every option of the .def file is a row (the generator is not empty).
        with open(os.path.join(SOURCE_DIR, "src", "config", "conf_options.def")) as f:
            declared = sum(1 for l in f if l.startswith("CONF_OPTION("))
        self.assertEqual(len(out.stdout.splitlines()), declared + 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
