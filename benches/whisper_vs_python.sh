#!/usr/bin/env bash
# Runs the whisper engine benchmarks of Carbyne (criterion) and of whisper.py on the same machine
# in one run, and writes the side-by-side table to benches/results/whisper.md (BENCHMARKS.md
# quotes it). Needs python3-whisper (apt-get install -y python3-whisper).
set -euo pipefail
cd "$(dirname "$0")/.."
out=benches/results
mkdir -p "$out"
/usr/bin/python3 -c 'import whisper' 2>/dev/null || { echo "python3-whisper is not installed" >&2; exit 1; }
cargo bench --bench whisper -- --output-format bencher 2>"$out/whisper-carbyne.stderr" | grep '^test ' | tee "$out/whisper-carbyne.txt"
/usr/bin/python3 benches/reference/whisper_bench.py | tee "$out/whisper-python.txt"
/usr/bin/python3 benches/reference/compare.py "$out/whisper-carbyne.txt" "$out/whisper-python.txt" > "$out/whisper.md"
cat "$out/whisper.md"
