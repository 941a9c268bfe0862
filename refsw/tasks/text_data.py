"""Text-detection test set for Track 1 (non-normative): words rendered on photos.

Deterministic pictures with ground truth, built only from files of installed
wheels (nothing is downloaded, nothing is shipped):

* backgrounds: a crop (4:3, 50..100 % of the largest) of a scikit-image photo
  (rocket, hubble_deep_field, retina, brick, grass, gravel, coffee, camera; grey
  ones as RGB; all CC0 or public domain), resized (Pillow bicubic) to the picture
  size, randomly flipped.  These are photos in which the PP-OCRv4 detector finds
  (almost) no text of its own; astronaut, motorcycle, chelsea and grace_hopper were
  left out: their lettering, logos or textures give it detections that no ground
  truth could name;
* text: 1..6 horizontal words per picture from a fixed list (upper, lower and mixed
  case, digits), rendered by Pillow with the DejaVu fonts of the matplotlib wheel
  (Sans, Sans Bold, Serif, Serif Bold, Sans Mono, Sans Oblique), 16..48 pixels
  (log-uniform); a light colour where the surroundings are dark, a dark one where
  they are light (mean luma of the line's region); an outline (1-2 px, black or
  white) on a quarter of the words without a plate and always on mid-grey surroundings (luma 80..176);
  three words in ten on a plate (a sign: a rectangle of the opposite tone around the
  line);
* one picture in six (i % 6 == 5) has no text.

Single words, not lines of several words: the detector finds text lines, and it
splits or joins words of a line depending on their spacing and size, which would
make a word-or-line ground truth ambiguous.  Words are kept apart by half a line
height or more (plates included).  The ground truth of a word is Pillow's
``ImageDraw.textbbox`` of the drawn text (its ink, outline included): x0, y0, x1,
y1 in picture samples, x1/y1 exclusive.  ``labels.json`` also records each word's
line box (the ink's x range, the font's ascender-to-descender y range).  Picture i
depends only on (seed, i), so a larger n extends a smaller one.

    python -m refsw.tasks.text_data --n 24 --seed 1 --out out/text_data \\
        [--manifest ctc/testsets/text.json]

writes ``text_NNNN.png`` and ``labels.json`` (boxes and the rendered words per
file) into the folder, and with ``--manifest`` the CTC manifest whose items pin
the sha256 of each picture's samples and carry the boxes (``boxes``), which the
task metric ``refsw.ctc.text_metric:text_f1`` reads.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

SIZE = (384, 512)          # (H, W)
# photos in which the detector finds no text of its own (astronaut, motorcycle_left, chelsea and
# grace_hopper were left out: logos, lettering or textures it takes for text)
BACKGROUNDS = ("rocket", "hubble_deep_field", "retina", "brick", "grass", "gravel", "coffee", "camera")
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf",
         "DejaVuSans-Oblique.ttf")
WORDS = ("OPEN", "EXIT", "Station", "coffee", "MARKET", "Track", "ROCKET", "north", "street", "Hotel",
         "Parking", "SALE", "bakery", "Museum", "garden", "2024", "No.17", "LIBRARY", "river", "Taxi",
         "PHARMACY", "welcome", "CAFE", "Platform", "school", "BANK", "cinema", "GateB", "theatre", "POST",
         "market", "Hospital", "zone", "STOP", "bridge", "Airport", "tickets", "FIRE", "camera", "press",
         "Video", "CODING", "machine", "feature", "vision", "A4-52", "1999", "Exit7")
LIGHT = ((255, 255, 255), (255, 235, 59), (250, 250, 210), (173, 216, 230), (255, 200, 120))
DARK = ((0, 0, 0), (20, 20, 90), (120, 0, 0), (0, 70, 0), (60, 30, 10))
NO_TEXT_EVERY = 6
MANIFEST_LICENCE = ("not redistributed; backgrounds: scikit-image photos, CC0 or public domain "
                    "(skimage/data/_fetchers.py); text rendered with the DejaVu fonts of the matplotlib wheel "
                    "(Bitstream Vera / DejaVu fonts licence, free)")


def font_dir() -> Path:
    import matplotlib
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@functools.lru_cache(maxsize=64)
def _font(name: str, size: int):
    from PIL import ImageFont
    return ImageFont.truetype(str(font_dir() / name), size)


@functools.lru_cache(maxsize=None)
def background(name: str) -> np.ndarray:
    from .face_data import still
    return still(name)


def _crop_background(rng, H, W):
    from PIL import Image
    name = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    bg = background(name)
    h, w = bg.shape[:2]
    ch = min(h, w * H / W) * rng.uniform(0.5, 1.0)
    cw = ch * W / H
    x, y = int(rng.uniform(0, w - cw + 1)), int(rng.uniform(0, h - ch + 1))
    crop = bg[y:y + int(ch), x:x + int(cw)]
    im = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((W, H), Image.BICUBIC))
    if rng.random() < 0.5:
        im = im[:, ::-1]
    return np.ascontiguousarray(im), name


def _luma(rgb) -> float:
    return float(np.mean(rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114)) if rgb.size else 128.0


def _free(box, taken) -> bool:
    return all(box[0] >= t[2] or box[2] <= t[0] or box[1] >= t[3] or box[3] <= t[1] for t in taken)


def make_picture(seed: int, i: int, size=SIZE):
    """Picture i: (RGB uint8 H x W x 3, boxes K x 4 int (x0, y0, x1, y1 exclusive), {background, lines})."""
    from PIL import Image, ImageDraw
    H, W = size
    rng = np.random.default_rng([seed, i])
    img, bg_name = _crop_background(rng, H, W)
    lines = []
    if i % NO_TEXT_EVERY != NO_TEXT_EVERY - 1:
        pil = Image.fromarray(img)
        draw = ImageDraw.Draw(pil)
        taken = []             # keep-out boxes (line box + margin)
        for _ in range(int(rng.integers(1, 7))):
            text = WORDS[int(rng.integers(len(WORDS)))]
            font_name = FONTS[int(rng.integers(len(FONTS)))]
            px = int(round(np.exp(rng.uniform(np.log(16), np.log(48)))))
            font = _font(font_name, px)
            plate = rng.random() < 0.3
            stroke = int(rng.integers(1, 3)) if (not plate and rng.random() < 0.25) else 0
            asc, desc = font.getmetrics()
            ink = draw.textbbox((0, 0), text, font=font, stroke_width=2)     # the widest outline
            tw, th = ink[2] - ink[0], asc + desc + 4
            pad = max(3, int(round(0.25 * th))) if plate else 0
            margin = max(6, int(round(0.5 * th)))
            if tw + 2 * pad + 8 > W or th + 2 * pad + 8 > H:
                continue
            for _ in range(50):
                x0 = int(rng.integers(4 + pad, W - 4 - pad - tw + 1))
                y0 = int(rng.integers(4 + pad, H - 4 - pad - th + 1))
                keep = (x0 - pad - margin, y0 - pad - margin, x0 + tw + pad + margin, y0 + th + pad + margin)
                if _free(keep, taken):
                    break
            else:
                continue
            ox, oy = x0 - ink[0], y0 + 2                              # text origin (anchor "la")
            region = np.asarray(pil)[y0 - pad:y0 + th + pad, x0 - pad:x0 + tw + pad]
            dark_bg = _luma(region) < 128
            if plate:   # a sign: plate of the opposite tone, text of the region's tone
                plate_col = LIGHT[int(rng.integers(len(LIGHT)))] if dark_bg else DARK[int(rng.integers(len(DARK)))]
                fill = DARK[int(rng.integers(len(DARK)))] if dark_bg else LIGHT[int(rng.integers(len(LIGHT)))]
            else:
                fill = LIGHT[int(rng.integers(len(LIGHT)))] if dark_bg else DARK[int(rng.integers(len(DARK)))]
                if 80 <= _luma(region) <= 176:      # mid-grey surroundings: an outline keeps the contrast
                    stroke = max(stroke, 2)
            box = draw.textbbox((ox, oy), text, font=font, stroke_width=stroke)
            line = (int(box[0]), int(oy - stroke), int(box[2]), int(oy + asc + desc + stroke))
            if plate:
                draw.rectangle((line[0] - pad, line[1] - pad, line[2] + pad - 1, line[3] + pad - 1), fill=plate_col)
            stroke_fill = (0, 0, 0) if sum(fill) > 384 else (255, 255, 255)
            draw.text((ox, oy), text, font=font, fill=fill, stroke_width=stroke, stroke_fill=stroke_fill)
            taken.append(keep)
            lines.append(dict(text=text, box=[int(v) for v in box], line_box=list(line), font=font_name, size=px,
                              fill=list(fill), stroke=stroke, plate=bool(plate)))
        img = np.asarray(pil)
    boxes = np.array([ln["box"] for ln in lines], np.int64).reshape(-1, 4)
    return np.ascontiguousarray(img), boxes, dict(background=bg_name, lines=lines)


def samples_sha256(rgb: np.ndarray) -> str:
    """sha256 of the planar samples R, G, B (1 byte each), as refsw.ctc.testsets pins a picture."""
    h = hashlib.sha256()
    for c in range(3):
        h.update(np.ascontiguousarray(rgb[..., c]).tobytes())
    return h.hexdigest()


def build(n: int, seed: int = 1, size=SIZE) -> list:
    H, W = size
    if H % 64 or W % 64:
        raise ValueError(f"picture size {W}x{H} is not a multiple of 64")
    return [make_picture(seed, i, size) for i in range(n)]


def _dumps(data) -> str:
    """JSON with indent 1, each box list on one line."""
    boxes = {}

    def mark(o):
        if isinstance(o, dict):
            return {k: (_mark_boxes(v, boxes) if k in ("boxes", "box", "line_box") else mark(v)) for k, v in o.items()}
        if isinstance(o, list):
            return [mark(v) for v in o]
        return o
    text = json.dumps(mark(data), indent=1)
    for key, val in boxes.items():
        text = text.replace(f'"{key}"', json.dumps(val))
    return text + "\n"


def _mark_boxes(v, boxes):
    key = f"@@boxes{len(boxes)}@@"
    boxes[key] = v
    return key


def write(folder, pictures, seed: int, manifest: str = "", out_arg: str = "") -> list[str]:
    """PNGs ``text_NNNN.png``, ``labels.json`` and optionally the CTC manifest
    (``out_arg``: the folder as the generating command names it, for its description)."""
    from PIL import Image
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files, items = {}, []
    for i, (img, boxes, meta) in enumerate(pictures):
        name = f"text_{i:04d}"
        Image.fromarray(img).save(folder / f"{name}.png")
        files[f"{name}.png"] = dict(boxes=boxes.tolist(), **meta)
        items.append({"name": name, "class": "-", "source": {"file": f"{name}.png"}, "width": int(img.shape[1]),
                      "height": int(img.shape[0]), "sha256": samples_sha256(img), "boxes": boxes.tolist(),
                      "licence": MANIFEST_LICENCE,
                      "provenance": f"generated by refsw.tasks.text_data (seed {seed}) from files of installed "
                                    f"wheels; background {meta['background']}"})
    meta = dict(seed=seed, size_hw=list(pictures[0][0].shape[:2]) if pictures else list(SIZE),
                box="x0, y0, x1, y1 (exclusive), Pillow ImageDraw.textbbox of each word", files=files)
    (folder / "labels.json").write_text(_dumps(meta), encoding="utf-8")
    if manifest:
        man = Path(manifest)
        root = os.path.relpath(folder.resolve(), man.parent.resolve())
        data = {"name": man.stem, "kind": "image",
                "description": (f"Text-detection set of Track 1: {len(items)} RGB "
                                f"{items[0]['width'] if items else SIZE[1]}x{items[0]['height'] if items else SIZE[0]} "
                                f"pictures, words rendered with the DejaVu fonts of matplotlib on photos of "
                                f"scikit-image, generated (not shipped) by: python -m "
                                f"refsw.tasks.text_data --n {len(items)} --seed {seed} --out {out_arg or folder} "
                                f"(see refsw/tasks/text_data.py). The root is "
                                f"that folder (TestSetRoot overrides); the sha256 of each picture's samples is "
                                f"pinned, so a regenerated set that differs is an error (VerifyHashes 0 skips the "
                                f"check). 'boxes': the ground truth, one box per word (x0, y0, x1, y1, x1/y1 "
                                f"exclusive, Pillow ImageDraw.textbbox), read by the task metric "
                                f"refsw.ctc.text_metric:text_f1."),
                "root": root.replace(os.sep, "/"),
                "tested_with": _versions(),
                "items": items}
        man.parent.mkdir(parents=True, exist_ok=True)
        man.write_text(_dumps(data), encoding="utf-8")
    return list(files)


def _versions() -> dict:
    from importlib import metadata
    out = {}
    for d in ("Pillow", "matplotlib", "scikit-image", "numpy"):
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            pass
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m refsw.tasks.text_data", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", default="512x384", help="WxH, multiples of 64 (default 512x384)")
    ap.add_argument("--out", required=True, help="output folder (PNGs + labels.json)")
    ap.add_argument("--manifest", default="", help="also write this CTC manifest (e.g. ctc/testsets/text.json)")
    a = ap.parse_args(argv)
    w, h = map(int, a.size.lower().split("x"))
    t0 = time.time()
    pics = build(a.n, a.seed, (h, w))
    write(a.out, pics, a.seed, a.manifest, a.out)
    nl = sum(len(b) for _, b, _ in pics)
    print(f"{a.n} pictures {w}x{h}, {nl} words, {sum(1 for _, b, _ in pics if not len(b))} without text; "
          f"{time.time() - t0:.1f} s -> {a.out}" + (f", {a.manifest}" if a.manifest else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
