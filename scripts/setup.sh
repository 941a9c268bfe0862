#!/usr/bin/env bash
# Create .venv and install refsw with its test dependencies (offline-capable:
# PyPI and Debian packages only). Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! command -v ffmpeg >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
    else
        echo "setup: ffmpeg not found; install it (apt-get install ffmpeg) for the inner codec and anchors" >&2
    fi
fi
# pedestrian clip of the people test set (ctc/testsets/people.json): OpenCV's vtest.avi
if [ ! -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends opencv-doc >/dev/null
    else
        echo "setup: opencv-doc not installed; the people test set needs it (apt-get install opencv-doc)" >&2
    fi
fi
# chromium: tests/test_ctc.py renders the HTML CTC report in a headless browser (skipped without it)
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
            || echo "setup: installing chromium failed; the HTML report's browser test will be skipped" >&2
    else
        echo "setup: chromium not found; install it (apt-get install chromium) to check the HTML CTC report" >&2
    fi
fi
[ -d .venv ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# CPU torch first (a file on these machines); the project's range then pulls nothing more.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test,ctc,track1]"
# MTCNN face-detector weights for the Track 2 ROI tool and task metric; its declared
# dependencies would replace torch with a CUDA build, so no deps (only weight files are used).
.venv/bin/python -m pip install -q --no-deps "facenet-pytorch==2.6.0"
# PP-OCRv4 text detector of Track 1 (refsw.tasks.split); its declared opencv-python would clash with
# opencv-python-headless, so no deps (the track1 extra installs what its detector needs).
.venv/bin/python -m pip install -q --no-deps "rapidocr-onnxruntime==1.4.4"
echo "setup: done (.venv)"
