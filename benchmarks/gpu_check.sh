#!/usr/bin/env bash
# GPU validation in one command, for a lent GPU machine (no network, a CUDA torch preinstalled):
#
#   bash benchmarks/gpu_check.sh             # everything, in under 8 minutes
#   bash benchmarks/gpu_check.sh --dry-run   # list the steps, their commands and time limits; run nothing
#
# Steps: build the CUDA extension in the tree (pip install -e, FORCE_CUDA=1, TORCH_CUDA_ARCH_LIST
# from the device's capability), check every op's CUDA kernel is registered, run the kernels'
# self-check against the reference in every dtype (errors beside tolerances), run every CUDA test
# (pytest -m cuda; a skipped one counts as a failure on a GPU), benchmarks/ops.py --device cuda,
# the generator benchmark in float16 and in bfloat16 (--quick), and the augmentation benchmark.
# Each step runs under `timeout` (its own limit, and never past the whole run's budget,
# GPU_CHECK_BUDGET seconds, default 450); a failing step is reported and the next one still runs.
#
# Results: $OUT/gpu_check.md (or .gpu_check/gpu_check.md without $OUT): the device (nvidia-smi
# name, driver, torch and CUDA versions), each step's status and time, and each step's output
# tail; docs/benchmarks.md gets the benchmarks' own sections and a `gpu-check` section, and a copy
# of it goes to $OUT/benchmarks.md (the tree on a lent machine does not come back by itself).
# Wheels of packages the machine lacks (monai, pytorch-ignite) are taken from .whl/ when present
# (see docs/benchmarks.md, "GPU validation").
#
# Exit status: 0 when every step passed, 1 when any failed or did not run, 2 when there is no
# CUDA device (checked first, in seconds).
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-450}
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument '$arg' (use --dry-run or --help)" >&2; exit 2 ;;
  esac
done

results_dir=${OUT:-.gpu_check}
logs=${GPU_CHECK_LOGS:-.gpu_check}
cuda_tests=$(grep -lE "requires_cuda|mark\.cuda" -r tests --include='test_*.py' | sort | tr '\n' ' ')

# name | limit (s) | command. ARCH is filled in once the device is known.
STEPS=(
  "build|300|FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=\$ARCH MAX_JOBS=\$(nproc) $PY -m pip install --no-build-isolation --no-deps --no-index -e ."
  "registration|60|$PY .ci/check_cuda_ops.py"
  "selfcheck|60|$PY -m gemix_monai.ops._selfcheck --device cuda"
  "cuda-tests|180|$PY -m pytest -p no:cacheprovider -q -rs -m cuda $cuda_tests"
  "ops|150|$PY benchmarks/ops.py --device cuda"
  "generator-fp16|150|$PY -m benchmarks.generator --device cuda --quick --mixed-precision float16"
  "generator-bf16|150|$PY -m benchmarks.generator --device cuda --quick --mixed-precision bfloat16"
  "augmentation|120|$PY benchmarks/augmentation.py --device cuda"
)

if [ "$DRY_RUN" = 1 ]; then
  echo "gpu_check: dry run; the steps, in order (each under 'timeout', within a budget of ${BUDGET} s in all):"
  i=0
  for step in "${STEPS[@]}"; do
    i=$((i + 1))
    IFS='|' read -r name limit cmd <<<"$step"
    printf '  %d. %-15s (at most %3s s)  %s\n' "$i" "$name" "$limit" "$cmd"
  done
  echo "gpu_check: results would go to $results_dir/gpu_check.md and docs/benchmarks.md (section gpu-check)"
  exit 0
fi

# The device, first and fast: no CUDA device means nothing else can be checked.
if ! command -v nvidia-smi >/dev/null 2>&1 || ! gpu_line=$(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader 2>&1) || [ -z "$gpu_line" ]; then
  echo "gpu_check: no CUDA device: nvidia-smi is missing or lists no GPU (${gpu_line:-nvidia-smi not found}); run this on a machine with an NVIDIA GPU" >&2
  exit 2
fi
gpu_line=$(echo "$gpu_line" | head -n1)

# Wheels carried to a machine without network (pure-Python packages it lacks).
if compgen -G ".whl/*.whl" >/dev/null; then
  site=${GPU_CHECK_SITE:-/tmp/gemix_gpu_check_site}
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl; then
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    echo "gpu_check: installed $(ls .whl/*.whl | wc -l) carried wheel(s) from .whl/ into $site"
  else
    echo "gpu_check: WARNING: installing the wheels of .whl/ failed; steps that need them will fail" >&2
  fi
fi

if ! torch_line=$("$PY" -c 'import torch; assert torch.cuda.is_available(), "torch.cuda.is_available() is False"; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, capability {torch.cuda.get_device_capability()[0]}.{torch.cuda.get_device_capability()[1]}")' 2>&1); then
  echo "gpu_check: no CUDA device usable from torch ($(echo "$torch_line" | tail -n1)); nvidia-smi: $gpu_line" >&2
  exit 2
fi
ARCH=$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')
device="$gpu_line (name, driver, compute capability); $torch_line; $("$PY" -V 2>&1); $(nproc) CPU cores"
echo "gpu_check: device: $device"
mkdir -p "$logs" "$results_dir"

started=$SECONDS
status_rows=()
overall=0
: >"$logs/all.log"
for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit cmd <<<"$step"
  cmd=${cmd//\$ARCH/$ARCH}
  left=$((BUDGET - (SECONDS - started)))
  if [ "$left" -lt 20 ]; then
    status_rows+=("| $name | NOT RUN (budget of $BUDGET s spent) | 0 |")
    overall=1
    continue
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "gpu_check: ---- $name (at most $limit s): $cmd" | tee -a "$logs/all.log"
  t0=$SECONDS
  PYTHONUNBUFFERED=1 timeout --kill-after=10 "$limit" bash -c "$cmd" >"$logs/$name.log" 2>&1
  rc=$?
  took=$((SECONDS - t0))
  cat "$logs/$name.log" >>"$logs/all.log"
  verdict=passed
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    verdict="TIMED OUT after $limit s"
  elif [ "$rc" -ne 0 ]; then
    verdict="FAILED (exit $rc)"
  elif [ "$name" = cuda-tests ] && tail -n 3 "$logs/$name.log" | grep -q skipped; then
    verdict="FAILED (CUDA tests were skipped on a GPU machine: see -rs output)"
  fi
  [ "$verdict" = passed ] || overall=1
  echo "gpu_check: $name $verdict in $took s" | tee -a "$logs/all.log"
  status_rows+=("| $name | $verdict | $took |")
done
total=$((SECONDS - started))

report="$results_dir/gpu_check.md"
{
  echo "## GPU validation (\`benchmarks/gpu_check.sh\`)"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M') UTC on: $device. Whole run: $total s; result: $([ "$overall" = 0 ] && echo 'every step passed' || echo 'SOME STEPS FAILED')."
  echo
  echo "| step | result | seconds |"
  echo "|---|---|---:|"
  printf '%s\n' "${status_rows[@]}"
  echo
  echo "The benchmark tables are in the sections ops-cuda, generator-cuda-float16, generator-cuda-bfloat16 and augmentation-cuda."
} >"$report.head"
"$PY" - "$report.head" <<'EOF' || echo "gpu_check: could not write the gpu-check section of docs/benchmarks.md" >&2
import sys
sys.path.insert(0, ".")
from benchmarks._report import write_section
write_section("gpu-check", open(sys.argv[1]).read())
EOF
{
  cat "$report.head"
  for step in "${STEPS[@]}"; do
    IFS='|' read -r name _ _ <<<"$step"
    [ -f "$logs/$name.log" ] || continue
    echo
    echo "### $name (last 80 lines of output)"
    echo
    echo '```'
    tail -n 80 "$logs/$name.log"
    echo '```'
  done
} >"$report"
rm -f "$report.head"
cp docs/benchmarks.md "$results_dir/benchmarks.md" 2>/dev/null || true
[ "$results_dir" = "$logs" ] || cp "$logs/all.log" "$results_dir/gpu_check.log"
echo "gpu_check: results in $report$( [ "$results_dir" = "$logs" ] || echo " and $results_dir/benchmarks.md" ); $total s in all"
exit "$overall"
