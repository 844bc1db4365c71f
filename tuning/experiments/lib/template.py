#!/usr/bin/python3
"""Copies a case's configuration template to the run's directory: every @NAME@ becomes the
value of the environment variable TPL_NAME. A placeholder without a value is an error, so a
template can never reach a server half filled in.

Usage: template.py SRC DST"""
import os
import re
import sys


def main(src, dst):
    text = open(src).read()
    missing = []

    def value(match):
        name = match.group(1)
        if "TPL_" + name not in os.environ:
            missing.append(name)
            return match.group(0)
        return os.environ["TPL_" + name]

    out = re.sub(r"@([A-Z][A-Z0-9_]*)@", value, text)
    if missing:
        sys.exit("%s: no value for %s" % (src, ", ".join("@%s@" % m for m in sorted(set(missing)))))
    with open(dst, "w") as f:
        f.write(out)


if __name__ == "__main__":
    main(*sys.argv[1:3])
