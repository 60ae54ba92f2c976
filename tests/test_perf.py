"""`kdbench perf train` measures separate runs, one cohort and the memory formats with the real
engine; here on tiny models only to check it runs and reports every ratio (no timing asserts)."""

from __future__ import annotations

from benchmark.perf import format_training_report, measure_training


def test_training_benchmark_reports_every_configuration():
    timings = measure_training("resnet8", "resnet8", ("sp", "kd", "at"), batch_size=8,
                               steps=1, warmup=1, num_train=64)
    labels = [t.label for t in timings]
    assert labels == ["3 separate runs", "one cohort of 3", "single run (sp) fp32 NCHW",
                      "single run (sp) channels_last"]
    assert timings[0].images == 3 * 8 and timings[2].images == 8
    assert all(t.seconds > 0 for t in timings)
    report = format_training_report(timings)
    assert "cohort speed-up over separate runs" in report
    assert "channels_last speed-up over fp32 NCHW" in report
