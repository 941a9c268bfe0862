#!/usr/bin/env bash
# Release new intra_v1 weights (non-normative; docs/models/intra_v1.md, "Releasing weights").
#
#   scripts/release_intra.sh CANDIDATE.npz CANDIDATE.md
#
# CANDIDATE is a training export of refsw.train.train_intra (float weights at the
# trained operating points) and its model card.  Steps, each stopping the release
# on failure:
#   1. remap the candidate to the registered operating points (trained tables kept)
#      and check that its architecture is the registered one (IntraConfig);
#   2. gate: BD-rate of the remapped candidate against the shipped weights on the
#      held-out pictures must be < 0 (benchmarks/compare_weights.py, exit 3 otherwise);
#   3. ship float weights + card, convert the integer decoder data (calibrated on TRAIN)
#      and record its SHA-256 in refsw/decoder/model_data.py;
#   4. fine-tune the face branch from the shipped branch on the new base latent, keep
#      whichever of the two has the higher mean AP@0.5 on the eval split with the new
#      codec (needs out/face_data/{train,eval}.npz, see refsw.tasks.face_data), and convert
#      it against the new codec data (also with FACE_STEPS=0, where the branch is kept);
#   5. regenerate the conformance suite and check it (threads 1/2, int64 path).
# Environment: DEV (held-out pictures, ../shared/datasets/dev), TRAIN (calibration
# pictures, ../shared/datasets/train), FACE_STEPS (4000; 0 skips the fine-tuning in step 4),
# THREADS (2), WORK (out/release).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
    echo "usage: scripts/release_intra.sh CANDIDATE.npz CANDIDATE.md" >&2
    exit 2
fi
cand=$1
card=$2
for f in "$cand" "$card"; do
    [ -f "$f" ] || { echo "release_intra: no such file: $f" >&2; exit 2; }
done
DEV=${DEV:-../shared/datasets/dev}
TRAIN=${TRAIN:-../shared/datasets/train}
FACE_STEPS=${FACE_STEPS:-4000}
THREADS=${THREADS:-2}
WORK=${WORK:-out/release}
PY=.venv/bin/python
M=refsw/data/models
mkdir -p "$WORK"
stamp() { echo "[release_intra $(date -u +%H:%M:%S)] $*"; }

stamp "1. remap $cand to the registered operating points"
cp "$card" "$WORK/intra_v1.md"
$PY -m refsw.train.remap_points "$cand" "$WORK/intra_v1.npz" --card "$WORK/intra_v1.md" --dev "$DEV" \
    --threads "$THREADS"

# the registry (refsw/models/registry.py) must describe the candidate's architecture
$PY - "$WORK/intra_v1.npz" <<'PYEOF' || exit 2
import sys
from refsw.models.registry import load_model
try:
    load_model(1, sys.argv[1])
except ValueError as e:
    sys.exit(f"release_intra: {e} -- update IntraConfig in refsw/models/intra.py (and the docs) first")
PYEOF

stamp "2. gate against the shipped weights on $DEV"
if ! $PY benchmarks/compare_weights.py "$WORK/intra_v1.npz" --images "$DEV" --threads "$THREADS"; then
    echo "release_intra: the candidate is not better than the shipped weights; nothing shipped" >&2
    exit 3
fi

stamp "3. ship the float weights and convert the integer decoder (calibration: $TRAIN)"
cp "$M/intra_v1_face.npz" "$WORK/intra_v1_face_prev.npz"
cp "$WORK/intra_v1.npz" "$M/intra_v1.npz"
cp "$WORK/intra_v1.md" "$M/intra_v1.md"
$PY -m refsw.nn.convert --calib "$TRAIN"
$PY -m refsw.models.record_hashes     # the decoder checks the data against these (10.6)

if [ "$FACE_STEPS" -gt 0 ]; then
    stamp "4. face branch: $FACE_STEPS steps from the shipped branch"
    cp "$M/intra_v1_face.md" "$WORK/intra_v1_face_prev.md"
    $PY -m refsw.train.train_task --steps "$FACE_STEPS" --init "$WORK/intra_v1_face_prev.npz" --threads "$THREADS"
    # keep the previous branch if the fine-tuned one is not better on the new base latent
    best=$($PY -m refsw.train.train_task --eval-only "$WORK/intra_v1_face_prev.npz" "$M/intra_v1_face.npz" \
           --threads "$THREADS" | tee /dev/stderr | sed -n 's/^best: //p')
    [ -n "$best" ] || { echo "release_intra: evaluating the face branches failed" >&2; exit 1; }
    if [ "$best" = "$WORK/intra_v1_face_prev.npz" ]; then
        stamp "4. the fine-tuned branch is not better: the previous branch stays (add its AP on the new codec to its card)"
        cp "$WORK/intra_v1_face_prev.npz" "$M/intra_v1_face.npz"
        cp "$WORK/intra_v1_face_prev.md" "$M/intra_v1_face.md"
    fi
else
    stamp "4. face branch not fine-tuned (FACE_STEPS=0): the shipped branch stays, trained on the old base"
fi
# the branch's integer data follows the codec's synthesis-input scale (10.8): always reconvert
$PY -m refsw.nn.convert --branch face
$PY -m refsw.models.record_hashes

stamp "5. conformance suite"
$PY conformance/regenerate.py
.venv/bin/refsw-conformance --equivalence
stamp "done; now run benchmarks/intra.py (both test sets) and benchmarks/task.py, and update the docs"
