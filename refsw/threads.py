"""Thread-count control for the transforms (results never depend on it).

The CPU decoder's matrix products run in numpy's BLAS (limited through
threadpoolctl); torch's thread pool is set too when torch is in use (the
encoder, training, or a GPU decoder)."""
import sys


def set_threads(n: int):
    if not n or n <= 0:
        return
    from threadpoolctl import threadpool_limits
    threadpool_limits(n)      # numpy's BLAS (OpenBLAS / MKL)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
