"""MPEG-VCM Track 2 decoding (docs/spec/track2.md): inner HEVC/VVC decoding (T2.2)
and the restoration processes around it: bit-depth expansion (T2.5), spatial
(T2.3) and temporal (T2.4) resampling, the post filter (T2.6); ROI metadata
(T2.7).  :mod:`.sequence` registers the decoding process of coding mode "inner"."""
