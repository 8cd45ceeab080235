"""The peak an MFU divides by: the sustained dense-matmul throughput measured on this machine (CPU or GPU),
and, on a GPU, the datasheet dense bf16 peak of the detected device next to it."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

# dense (no sparsity) bf16 tensor-core peaks from the vendors' datasheets, FLOP/s; matched against
# torch.cuda.get_device_name in order (the first name that occurs in it wins)
DATASHEET_BF16 = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
)


def datasheet_bf16_peak(device_name: str) -> float | None:
    for name, peak in DATASHEET_BF16:
        if name.lower() in device_name.lower():
            return peak
    return None


@dataclass
class MatmulPeak:
    flops_per_s: float  # the best thread count's rate
    dtype: str
    n: int
    iters: int
    threads: int  # the thread count that reached it (CPU); 0 on a GPU
    by_threads: dict  # threads -> FLOP/s (CPU)
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (nothing to wait for on a CPU)."""
    if device.type != "cpu":
        torch.accelerator.synchronize(device)


def _loop_rate(n: int, iters: int, warmup: int, dtype: torch.dtype, device: torch.device) -> float:
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(warmup):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    synchronize(device)
    return 2 * n ** 3 * iters / (time.perf_counter() - start)


def sustained_matmul_peak(dtype: torch.dtype, device: torch.device, n: int = 2048, iters: int = 50,
                          warmup: int = 3, thread_counts: list[int] | None = None) -> MatmulPeak:
    """FLOP/s of `iters` back-to-back n x n x n matmuls after `warmup` ones; on a CPU, at each thread count
    (default 1 .. torch's current count, doubling, and that count) with the best kept. torch's thread count
    is restored afterwards."""
    name = str(dtype).removeprefix("torch.")
    method = f"{iters} back-to-back {n}x{n}x{n} {name} matmuls after {warmup} warm-up ones"
    if device.type != "cpu":
        rate = _loop_rate(n, iters, warmup, dtype, device)
        return MatmulPeak(rate, name, n, iters, 0, {}, method)
    current = torch.get_num_threads()
    if thread_counts is None:
        thread_counts, t = [], 1
        while t < current:
            thread_counts.append(t)
            t *= 2
        thread_counts.append(current)
    rates = {}
    try:
        for threads in thread_counts:
            torch.set_num_threads(threads)
            rates[threads] = _loop_rate(n, iters, warmup, dtype, device)
    finally:
        torch.set_num_threads(current)
    best = max(rates, key=rates.get)
    return MatmulPeak(rates[best], name, n, iters, best, rates, method + ", best thread count")
