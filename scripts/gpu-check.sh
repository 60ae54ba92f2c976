#!/usr/bin/env bash
# gpu-check.sh: the CUDA checks of issue 16 in under 5 minutes on one CUDA machine.
#
# Runs every CUDA test (marked `cuda`, or with "cuda" in its name: the rest skip without a GPU),
# then `kdbench perf --baseline published-loop` on the GPU (the published CRD step vs kdbench's
# single run, a cohort of the six core losses and the fast path: channels_last, bf16, compile),
# and writes everything, with the GPU, driver and library versions, to a report file.
#
# Usage: scripts/gpu-check.sh [REPORT]   (default: results/gpu-check-<date>.txt)
# Exit code: 1 when a test fails or no CUDA device is visible, else 0.
set -u
cd "$(dirname "$0")/.."
report="${1:-results/gpu-check-$(date -u +%Y%m%dT%H%M%SZ).txt}"
mkdir -p "$(dirname "$report")"
status=0
{
  echo "# kdbench gpu-check, $(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git rev-parse --short HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), 'available', torch.cuda.is_available())"
} > "$report"
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "no CUDA device visible: nothing measured" | tee -a "$report"
  exit 1
fi
echo "## CUDA tests" >> "$report"
timeout 150 python -m pytest -q -p no:xdist -k cuda tests/ >> "$report" 2>&1 || status=1
echo "## kdbench perf --baseline published-loop (cuda)" >> "$report"
timeout 150 kdbench perf --baseline published-loop --device cuda --steps 20 --rounds 3 \
  --fast-paths channels_last,bf16,compile >> "$report" 2>&1 || status=1
echo "## exit status $status" >> "$report"
cat "$report"
exit "$status"
