"""Common test conditions (CTC): test sets, anchors, metrics, BD-rate, runner
and reports (``refsw-ctc``; see docs/ctc.md).

Modules
    conditions  CTC option table, condition files, merge with the encoder cfg
    testsets    test-set manifests (embedded defaults and user sets)
    colour      RGB <-> YCbCr conversion used for anchors and YUV metrics
    anchors     HEVC (x265), VVC (vvenc) and JPEG (Pillow) anchors
    bd          Bjontegaard delta rate / quality (PCHIP, cubic, Pareto)
    tasks       task-metric interface (COCO mAP)
    runner      the (sequence x rate point) grid, parallel and resumable
    report      CSV, Markdown report and RD plots
    cli         ``refsw-ctc`` (run, anchors, bdrate, testsets, report, versions)
"""
