import pytest
import torch

from model.hardware import datasheet_bf16_peak, sustained_matmul_peak


@pytest.mark.parametrize("name, peak", [("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12),
                                        ("NVIDIA H200", 989e12), ("NVIDIA A100-SXM4-80GB", 312e12),
                                        ("NVIDIA L40S", 362e12), ("NVIDIA L40", 181e12),
                                        ("NVIDIA L4", 121e12), ("Tesla T4", None)])
def test_datasheet_peaks_name_the_right_card(name, peak):
    assert datasheet_bf16_peak(name) == peak


def test_the_sustained_peak_keeps_the_best_thread_count_and_restores_torchs():
    before = torch.get_num_threads()
    peak = sustained_matmul_peak(torch.float32, torch.device("cpu"), n=128, iters=5, warmup=1,
                                 thread_counts=[1, before])
    assert torch.get_num_threads() == before
    assert set(peak.by_threads) == {1, before}
    assert peak.flops_per_s == max(peak.by_threads.values()) > 0
    assert peak.by_threads[peak.threads] == peak.flops_per_s
    assert "5 back-to-back 128x128x128 float32 matmuls" in peak.method
