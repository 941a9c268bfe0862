"""Thread-count control for the transforms (results never depend on it)."""


def set_threads(n: int):
    if n and n > 0:
        import torch
        torch.set_num_threads(n)
