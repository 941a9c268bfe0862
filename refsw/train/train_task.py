"""Training of the face task branch on the base latent (non-normative).

    python -m refsw.train.train_task --train out/face_data/train.npz --eval out/face_data/eval.npz

The codec (intra_v1) is frozen.  For every training picture the encoder
analysis is run at a few random quality indices (and on the mirrored
picture) and the base-layer input of the branch, round(y * gE)[:48] * gD, is
cached; the head then trains on the cache with a CenterNet loss against the
MTCNN teacher's detections on the uncompressed picture (score >= --gt-score).
Writes refsw/data/models/intra_v1_face.npz (float) and a model card; the
integer data comes from ``python -m refsw.nn.convert --branch face``.

    python -m refsw.train.train_task --eval-only A.npz B.npz [--eval ...] [--codec ...]

evaluates branches without training (AP@0.5 with the float codec and head) and
prints ``best: FILE`` last; scripts/release_intra.sh keeps the better branch with it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

from refsw.models.registry import MODELS_DIR, find_task_branch, load_model
from refsw.models.task_face import FaceHead, FaceHeadConfig, loss_fn, make_targets
from refsw.models.task_io import load_branch, save_branch
from refsw.tasks.evaluate import average_precision, iou


def base_input(codec, x: torch.Tensor, q: float, base: int) -> torch.Tensor:
    """Branch input of pictures x (B,3,H,W) in [0,1] at quality q (float path)."""
    qq = torch.full((x.shape[0],), float(q))
    with torch.no_grad():
        gE, gD, _, _, _ = codec.gains(qq)
        y = codec.analysis(x)
        return torch.round(y * gE)[:, :base] * gD[:, :base]


def to_tensor(imgs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0


def gt_boxes(boxes, thr):
    return [[tuple(float(v) for v in b[:4]) for b in bb if b[4] >= thr] for bb in boxes]


def build_cache(codec, data, n_q, base, rng, log, batch=16):
    imgs = data["images"]
    N = len(imgs)
    xs, qs, tg = [], [], []
    t0 = time.time()
    for k in range(n_q):
        flip = k % 2 == 1
        for s in range(0, N, batch):
            x = to_tensor(imgs[s:s + batch])
            if flip:
                x = x.flip(3)
            q = float(rng.uniform(0, 63))
            xs.append(base_input(codec, x, q, base).half())
            qs += [q] * x.shape[0]
        log(f"cache pass {k + 1}/{n_q} ({'mirrored' if flip else 'plain'}), {time.time() - t0:.0f} s")
        W = imgs.shape[2]
        for bb in data["gt"]:
            tg.append([(W - b[2], b[1], W - b[0], b[3]) for b in bb] if flip else bb)
    return torch.cat(xs), torch.tensor(qs), tg


def shift_batch(rng, *ts, max_shift=3):
    """Same random translation by whole latent cells (16 px) of every tensor, zero fill."""
    dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, 2))
    out = []
    for t in ts:
        t = torch.roll(t, (dy, dx), dims=(2, 3))
        if dy > 0:
            t[:, :, :dy] = 0
        elif dy < 0:
            t[:, :, dy:] = 0
        if dx > 0:
            t[:, :, :, :dx] = 0
        elif dx < 0:
            t[:, :, :, dx:] = 0
        out.append(t)
    return out


def decode_float(out: torch.Tensor, cfg: FaceHeadConfig):
    """Float mirror of the normative detection output (10.8.2), for monitoring."""
    stride, score_min, max_det = cfg.stride, cfg.score_min, cfg.max_detections
    o = out.detach().numpy()
    res = []
    for b in range(o.shape[0]):
        ii, jj = np.nonzero(o[b, 0] >= score_min)
        cand = sorted(((-o[b, 0, i, j], i, j) for i, j in zip(ii, jj)))
        kept = []
        for neg, i, j in cand:
            dx, dy, w, h = o[b, 1:, i, j]
            w, h = stride * max(w, 1 / 256), stride * max(h, 1 / 256)
            cx, cy = stride * (j + 0.5 + dx), stride * (i + 0.5 + dy)
            d = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, -neg)
            if all(iou(d, k) <= cfg.nms_iou for k in kept):
                kept.append(d)
            if len(kept) == max_det:
                break
        res.append(kept)
    return res


def evaluate(head, codec, data, qs, base):
    head.eval()
    x = to_tensor(data["images"])
    res = {}
    for q in qs:
        dets = []
        for s in range(0, len(x), 16):
            with torch.no_grad():
                dets += decode_float(head(base_input(codec, x[s:s + 16], q, base)), head.cfg)
        res[q] = average_precision(data["gt"], dets, 0.5)
    head.train()
    return res


EVAL_QS = (0, 16, 32, 48, 63)   # quality indices of the final evaluation and of --eval-only


def _read_branch(ap, opt, path):
    """A branch weight file, or an argparse error naming it."""
    if not os.path.isfile(path):
        ap.error(f"{opt} {path!r}: no such file")
    try:
        return load_branch(path)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        ap.error(f"{opt} {path!r}: not a task-branch weight file ({e})")


def eval_only(ap, a) -> int:
    """--eval-only: AP@0.5 of each branch with the codec; prints 'best: FILE' last."""
    heads = [_read_branch(ap, "--eval-only", f) for f in a.eval_only]
    from refsw.tasks.face_data import load_npz
    torch.set_num_threads(a.threads)
    codec = load_model(1, a.codec)
    ev = load_npz(a.eval)
    ev["gt"] = gt_boxes(ev["boxes"], a.gt_score)
    means = []
    for path, head in zip(a.eval_only, heads):
        r = evaluate(head, codec, ev, EVAL_QS, codec.cfg.base_channels)
        means.append(sum(r.values()) / len(r))
        print(f"{path}: AP@0.5 " + " ".join(f"q{q}:{v:.3f}" for q, v in r.items()) + f" (mean {means[-1]:.3f})",
              flush=True)
    print(f"best: {a.eval_only[means.index(max(means))]}")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", default="out/face_data/train.npz")
    ap.add_argument("--eval", default="out/face_data/eval.npz")
    ap.add_argument("--codec", default=None, help="codec float weights (default: shipped intra_v1)")
    ap.add_argument("--out", default=os.path.join(MODELS_DIR, "intra_v1_face.npz"))
    ap.add_argument("--gt-score", type=float, default=0.9)
    ap.add_argument("--cache-passes", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--shift", type=int, default=3, help="random translation of the latent by up to N cells")
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--channels", type=int, default=FaceHeadConfig.channels, help="hidden channels of t_s")
    ap.add_argument("--depth", type=int, default=FaceHeadConfig.depth, help="hidden 3x3 conv layers of t_s")
    ap.add_argument("--init", default=None,
                    help="start from the weights of an earlier branch (.npz), e.g. one trained on an earlier codec")
    ap.add_argument("--eval-only", nargs="+", metavar="BRANCH.npz",
                    help="do not train: print AP@0.5 of each branch on --eval with the codec at q "
                         f"{', '.join(map(str, EVAL_QS))}, then 'best: FILE' (highest mean AP; the first on a tie)")
    a = ap.parse_args(argv)
    if a.eval_only:
        return eval_only(ap, a)
    # read before the (long) cache build, so a bad file fails at once
    init_head = _read_branch(ap, "--init", a.init) if a.init else None
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    from refsw.tasks.face_data import load_npz

    def log(msg):
        print(time.strftime("%H:%M:%S ") + msg, flush=True)

    t_start = time.time()
    codec = load_model(1, a.codec)
    base = codec.cfg.base_channels
    tr, ev = load_npz(a.train), load_npz(a.eval)
    for d in (tr, ev):
        d["gt"] = gt_boxes(d["boxes"], a.gt_score)
    log(f"train {len(tr['images'])} pictures, {sum(map(len, tr['gt']))} faces; eval {len(ev['images'])} "
        f"pictures, {sum(map(len, ev['gt']))} faces (teacher score >= {a.gt_score})")
    X, Q, G = build_cache(codec, tr, a.cache_passes, base, rng, log)
    h, w = X.shape[2:]
    heat, reg, mask = make_targets(G, h, w)
    if init_head is not None:
        head = init_head
        head.train()
        log(f"initialised from {a.init} (its t_s shape overrides --channels/--depth): "
            f"{head.cfg.channels} channels, depth {head.cfg.depth}")
    else:
        head = FaceHead(FaceHeadConfig(channels=a.channels, depth=a.depth))
    opt = torch.optim.AdamW(head.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    t0 = time.time()
    acc = 0.0
    for step in range(1, a.steps + 1):
        lr = a.lr * 0.5 * (1 + math.cos(math.pi * step / a.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.from_numpy(rng.integers(0, len(X), a.batch))
        xb, hb, rb, mb = X[idx].float(), heat[idx], reg[idx], mask[idx]
        if a.shift:
            xb, hb, rb, mb = shift_batch(rng, xb, hb, rb, mb, max_shift=a.shift)
        out = head(xb)
        loss = loss_fn(out, hb, rb, mb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 5.0)
        opt.step()
        acc += loss.item()
        if step % 200 == 0:
            log(f"step {step} loss {acc / 200:.4f} lr {lr:.2e} {time.time() - t0:.0f} s")
            acc = 0.0
        if step % 1000 == 0 or step == a.steps:
            r = evaluate(head, codec, ev, (0, 32, 63), base)
            log("eval AP@0.5 " + " ".join(f"q{q}:{v:.3f}" for q, v in r.items()))
    r = evaluate(head, codec, ev, EVAL_QS, base)
    save_branch(head, a.out, {"steps": a.steps, "train_seconds": time.time() - t_start})
    card = a.out.replace(".npz", ".md")
    with open(card, "w") as f:
        f.write(f"# Model card: intra_v1_face (task branch id 1 of sps_model_id 1)\n\n"
                f"Face detector on the base latent layer (48 channels, stride 16) of intra_v1; "
                f"design in refsw/models/task_face.py, decoding process in docs/spec/10-task-branches.md.\n\n"
                f"- teacher: offline MTCNN (refsw.tasks.mtcnn, weights from the facenet-pytorch 2.6.0 wheel), "
                f"detections with score >= {a.gt_score} on the uncompressed pictures\n"
                f"- data: `python -m refsw.tasks.face_data` composites ({len(tr['images'])} training pictures, "
                f"{sum(map(len, tr['gt']))} faces; {a.cache_passes} cached codec passes at random quality, "
                f"half mirrored)\n"
                f"- codec: frozen intra_v1 float encoder\n"
                + (f"- initialised from `{a.init}`\n" if a.init else "")
                + f"- steps {a.steps}, batch {a.batch}, AdamW lr {a.lr:g} cosine, weight decay {a.weight_decay:g}, "
                f"random translation of the latent by up to {a.shift} cells; wall time "
                f"{time.time() - t_start:.0f} s on this machine ({a.threads} thread(s))\n"
                f"- decoder cost: {head.kmac_per_pixel():.3f} kMAC per picture pixel\n"
                f"- command: `python -m refsw.train.train_task {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
                f"## AP@0.5 on the eval split (float head, float encoder), by quality index\n\n"
                + "| q | " + " | ".join(str(q) for q in r) + " |\n|---|" + "---|" * len(r) + "\n"
                + "| AP@0.5 | " + " | ".join(f"{v:.3f}" for v in r.values()) + " |\n")
    log(f"wrote {a.out} and {card}; eval " + json.dumps({str(k): round(v, 4) for k, v in r.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
