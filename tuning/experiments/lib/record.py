#!/usr/bin/python3
"""Prints one raw result as a JSON line from KEY=VALUE arguments: VALUE is taken as JSON when
it parses (numbers, true, null, objects), as a string otherwise; KEY=@PATH reads a JSON file
(null when it is missing or not JSON, e.g. a loadgen that printed nothing).

Usage: record.py KEY=VALUE|KEY=@PATH..."""
import json
import sys


def value(text):
    if text.startswith("@"):
        try:
            with open(text[1:]) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(args):
    out = {}
    for arg in args:
        key, sep, text = arg.partition("=")
        if not sep:
            raise SystemExit("record.py: %r is not KEY=VALUE" % arg)
        out[key] = value(text)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
