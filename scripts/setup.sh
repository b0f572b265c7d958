#!/usr/bin/env bash
# Set up xares-hf in ./.venv from a clean clone: Debian packages (apt-get, when root): ffmpeg (audio
# decoding) and the material of the xares-mini suite (espeak-ng, fluidsynth + fluid-soundfont-gm,
# ufoai-sound); then the CPU build of torch 2.13.0, torchcodec 0.13.0 (the datasets.Audio backend that
# works on CPU), and the package with its test extras. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(ffmpeg espeak-ng fluidsynth fluid-soundfont-gm ufoai-sound)
# the leaderboard's browser tests use Debian's chromium (never a browser download); installed when root
[ "$(id -u)" = 0 ] && DEBS+=(chromium)
missing=()
for deb in "${DEBS[@]}"; do
  dpkg -s "$deb" >/dev/null 2>&1 || missing+=("$deb")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${missing[*]}; install them first (sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" --upgrade pip
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build; torchcodec>=0.14 are CUDA builds.
"${PIP[@]}" "torch==${XARES_HF_TORCH:-2.13.0}" "torchcodec==${XARES_HF_TORCHCODEC:-0.13.0}"
"${PIP[@]}" -e ".[test]"
echo "setup: done ($(.venv/bin/python -c 'import xares_hf; print("xares-hf", xares_hf.__version__)'))"
