"""Helpers shared by the benchmark scripts (run as `python benchmarks/NAME.py`, which puts this folder on the path)."""
import statistics
import time

import torch

from robustcompress_nb.train import Callback, CancelFitException


def sync(device):
    "Wait for queued CUDA work, so that a timer measures it; a no-op on the CPU."
    device = torch.device(device)
    if device.type == 'cuda': torch.cuda.synchronize(device)


def median_time(fn, repeats, device, clock=time.perf_counter):
    "Median over `repeats` timed calls of `fn()`, after one untimed warm-up call."
    fn(); sync(device)
    ts = []
    for _ in range(repeats):
        sync(device); t = clock(); fn(); sync(device); ts.append(clock() - t)
    return statistics.median(ts)


class StopAfter(Callback):
    "Cancel the run after `n` optimizer steps (an untimed warm-up)."
    order = 99
    def __init__(self, n): self.n = n
    def after_step(self):
        if self.trainer.step >= self.n: raise CancelFitException
