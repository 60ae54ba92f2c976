"""The loader benchmark runs end to end on a tiny input (its speed is measured by
``kdbench perf loader``, never asserted in a test)."""

import pytest

from benchmark.perf_loader import format_table, measure_loader_throughput


def test_measure_loader_throughput_reports_rates_and_ratios():
    result = measure_loader_throughput(num_images=96, batch_size=32)
    rates = [result[k] for k in ("tensor_loader_images_per_s", "dataloader_workers0_images_per_s",
                                 "dataloader_workers2_images_per_s")]
    assert all(rate > 0 for rate in rates)
    assert result["speedup_vs_workers0"] == pytest.approx(rates[0] / rates[1])
    assert result["speedup_vs_workers2"] == pytest.approx(rates[0] / rates[2])
    table = format_table(result)
    assert "tensor loader" in table and "2 workers" in table
