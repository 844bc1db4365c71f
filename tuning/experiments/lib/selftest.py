#!/usr/bin/python3
"""Checks of the runner's helpers that decide what a result says: the durability verifier
against files written by whisper.py itself (python3-whisper), the templates, the raw records and
the summary's medians, ranges and ratios.

Run: /usr/bin/python3 tuning/experiments/lib/selftest.py   (needs python3-whisper)"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import whisper

LIB = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, LIB)

import summarize  # noqa: E402
import verify_whisper  # noqa: E402


def write(root, name, archives, points):
    path = verify_whisper.metric_path(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    whisper.create(path, archives)
    if points:
        now = max(ts for ts, _ in points) + 1
        whisper.update_many(path, points, now=now)
    return path


class Verify(unittest.TestCase):
    START, INTERVAL = 1_700_000_000, 10

    def test_names_follow_the_loadgen_template(self):
        self.assertEqual(verify_whisper.metric_name("{prefix}.host{h}.cpu{m}", "lg", 12345), "lg.host123.cpu45")
        self.assertEqual(verify_whisper.metric_name("{prefix}.n{i}.d{d}", "lg", 123456), "lg.n123456.d12")
        self.assertTrue(verify_whisper.metric_path("/d", "a.b.c").endswith("/d/a/b/c.wsp"))

    def test_counts_only_the_runs_timestamps(self):
        with tempfile.TemporaryDirectory() as root:
            ts = [self.START + i * self.INTERVAL for i in range(5)]
            full = write(root, "a.full", [(10, 360)], [(t, 1.0) for t in ts] + [(self.START - 10, 9.0)])
            partial = write(root, "a.partial", [(10, 360)], [(t, 1.0) for t in ts[:3]])
            gap = write(root, "a.gap", [(10, 360)], [(t, 1.0) for t in ts if t != ts[2]])
            self.assertEqual(verify_whisper.count(full, self.START, 5, self.INTERVAL), 5)
            self.assertEqual(verify_whisper.count(partial, self.START, 5, self.INTERVAL), 0, "last point missing")
            self.assertEqual(verify_whisper.count(gap, self.START, 5, self.INTERVAL), 4)
            self.assertEqual(verify_whisper.count(os.path.join(root, "none.wsp"), self.START, 5, self.INTERVAL), 0)
            empty = write(root, "a.empty", [(10, 360)], [])
            self.assertEqual(verify_whisper.count(empty, self.START, 5, self.INTERVAL), 0)

    def test_a_wrapped_ring_is_read_by_slot(self):
        with tempfile.TemporaryDirectory() as root:
            # 6 slots: 9 points wrap the ring; the last 6 remain.
            ts = [self.START + i * self.INTERVAL for i in range(9)]
            path = write(root, "w", [(10, 6)], [(t, 1.0) for t in ts])
            self.assertEqual(verify_whisper.count(path, ts[3], 6, self.INTERVAL), 6)
            self.assertEqual(verify_whisper.count(path, ts[0], 9, self.INTERVAL), 6, "3 overwritten: incomplete")

    def test_the_poller_says_when_everything_is_there(self):
        with tempfile.TemporaryDirectory() as root:
            for i in range(3):
                write(root, "lg.n%d" % i, [(10, 360)], [(self.START + k * 10, 1.0) for k in range(4)])
            # The last write: the newest modification time among the metrics' files.
            for i, when in enumerate([1_700_000_100.5, 1_700_000_300.25, 1_700_000_200.0]):
                os.utime(verify_whisper.metric_path(root, "lg.n%d" % i), (when, when))
            ok = self.run_verifier(root, 3)
            self.assertEqual((ok["complete"], ok["points"]), (3, 12))
            self.assertAlmostEqual(ok["done_at"], 1_700_000_300.25, places=3)
            self.assertGreater(ok["seen_at"], ok["done_at"])
            missing = self.run_verifier(root, 4)
            self.assertEqual((missing["complete"], missing["files"], missing["done_at"]), (3, 3, None))
            self.assertIsNone(missing["seen_at"])

    def run_verifier(self, root, metrics):
        out = subprocess.run([sys.executable, os.path.join(LIB, "verify_whisper.py"), root, "{prefix}.n{i}", "lg",
                              str(metrics), "4", str(self.START), "10", "0.3"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0 if metrics == 3 else 1, out.stderr)
        return json.loads(out.stdout)


class Helpers(unittest.TestCase):
    def test_templates_refuse_a_missing_value(self):
        with tempfile.TemporaryDirectory() as d:
            src, dst = os.path.join(d, "in"), os.path.join(d, "out")
            with open(src, "w") as f:
                f.write("DIR = @DIR@/x\nPORT = @PORT@\n# user@example.org stays\n")
            env = dict(os.environ, TPL_DIR="/data", TPL_PORT="2003")
            subprocess.run([sys.executable, os.path.join(LIB, "template.py"), src, dst], env=env, check=True)
            with open(dst) as f:
                self.assertEqual(f.read(), "DIR = /data/x\nPORT = 2003\n# user@example.org stays\n")
            del env["TPL_PORT"]
            out = subprocess.run([sys.executable, os.path.join(LIB, "template.py"), src, dst], env=env,
                                 capture_output=True, text=True)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("@PORT@", out.stderr)

    def test_records_take_json_strings_and_files(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "lg.json")
            with open(path, "w") as f:
                f.write('{"accepted": true}')
            out = subprocess.run([sys.executable, os.path.join(LIB, "record.py"), "run=2", "impl=carbyne",
                                  "load=0.5 1.0 2.0", "lg=@" + path, "gone=@" + path + ".missing"],
                                 capture_output=True, text=True, check=True).stdout
            self.assertEqual(json.loads(out), {"run": 2, "impl": "carbyne", "load": "0.5 1.0 2.0",
                                               "lg": {"accepted": True}, "gone": None})

    def test_durable_time_starts_with_the_loadgens_clock(self):
        run = {"t0": 100.0, "verify": {"done_at": 110.0}, "loadgen": {"started_unix_s": 102.5}}
        self.assertEqual(summarize.durable_seconds(run), 7.5)
        run["loadgen"] = {}
        self.assertEqual(summarize.durable_seconds(run), 10.0)
        run["verify"] = {"done_at": None}
        self.assertIsNone(summarize.durable_seconds(run))

    def test_medians_ranges_and_ratios(self):
        self.assertEqual(summarize.cell([3.0, 1.0, 2.0]), "2 (1 - 3)")
        self.assertEqual(summarize.cell([1500.0]), "1,500")
        self.assertEqual(summarize.cell([None]), "-")
        self.assertEqual(summarize.ratio(50.0, 10.0), "5.00x")
        self.assertEqual(summarize.ratio(1.0, 0), "-")
        self.assertEqual(summarize.ratio(None, 1.0), "-")


if __name__ == "__main__":
    unittest.main()
