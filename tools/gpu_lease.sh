#!/usr/bin/env bash
# The replicate check of the measuring code on a lent GPU machine, in one background run (a developer's tool):
#
#   bash ../shared/gpu/bg.sh start rep 'FMTBENCH_COMMIT=<hash> bash tools/gpu_lease.sh'  # after the bundle's calls
#   (pack.sh, unpack.sh); bg.sh copies the checkout without .git, so host.txt names the commit given here
#   bash ../shared/gpu/bg.sh wait rep 560 lease                        # as often as it takes; brings back lease/
#
# A run the lease may cut short (issue 35's whole grid: GRID= STEPS="A tests"): name the run's own files in each wait
# too, so what it wrote so far comes back whatever happens next (tar reads absolute paths; the exports stay behind):
#   bash ../shared/gpu/bg.sh wait grid 560 lease /tmp/lease-runs/runA/artifacts/results \
#     /tmp/lease-runs/runA/artifacts/logs /tmp/lease-runs/runA/.snakemake/log
#
# In bg.sh's copy of the checkout, under lease/: the host, run A of the reduced grid from empty, run B from a copy of
# A's workspace without its results, logs and report (A's weights, images, references and exports kept), the plain loop
# beside every CUDA model-alone row of both runs, the GPU tests, the replicate table (tools/replicate.py; with it
# tools/one_process.py: what one process per CUDA row would have reproduced) and where each run's time went
# (tools/breakdown.py). Each step appends its wall time to lease/times.txt, so a run cut short still says what it
# reached. STEPS (default "tests beside A B anchors table spread ortload": the GPU tests and `beside` first, so a lease
# cut short has them) picks steps; GRID the grid's --config (empty: config.yaml's whole default grid, e.g. GRID=
# STEPS="A tests" for issue 35's run); `ortload` is tools/ort_load_memory.py on run A's fp32 ONNX export (what an ORT
# CUDA session adds, 8 fresh processes, about 40 s); the step `probe` (tools/host_probe.py --harness, PROBE_SECONDS per
# phase, 13 phases) is not a default one, nor is `nvjpeg` (tools/nvjpeg_memory.py: what nvJPEG keeps on the device by
# batch size and order, about a minute); `beside` is tools/spin_beside_load.py (a measuring process quiet and beside a
# CPU row's load, with the spin check's retakes, about 2 min). GPU_TESTS: what the step `tests` runs (default: every GPU
# test under tests/; a lease short of time can name files or `file::test`). `spread` is tools/process_spread.py on the
# runs made (each CUDA model-alone process's device time by whether other work shared the host, with its spin check's
# retakes; seconds). Beside runs A and B, tools/host_timeline.py records the host (lease/timeline.jsonl) and relates the
# CPU rows' slow calls to it (lease/relate-runA.md, relate-runB.md).
set -u
W=$(pwd)
OUTDIR=$W/lease
R=/tmp/lease-runs
STEPS=${STEPS:-tests beside A B anchors table spread ortload}
GRID=${GRID-'image_sizes=[224] batch_sizes=[32,64]'}   # GRID= (empty): the default grid, config.yaml's
mkdir -p "$OUTDIR" "$R"
export PYTHONPATH=$W:$W/tools${PYTHONPATH:+:$PYTHONPATH}

step() {  # step NAME COMMAND...: runs it, its output in lease/NAME.log, its wall time in lease/times.txt
  local name=$1; shift
  local start=$(date +%s)
  echo "== $name: $*" | tee -a "$OUTDIR/times.txt"
  "$@" > "$OUTDIR/$name.log" 2>&1
  local rc=$?
  echo "$name: rc $rc, $(( $(date +%s) - start )) s, ended $(date -u +%H:%M:%S)" | tee -a "$OUTDIR/times.txt"
  return $rc
}

workspace() {  # a copy of the checkout to run a study in (its own artifacts/)
  rm -rf "$R/$1" && mkdir -p "$R/$1"
  if git -C "$W" rev-parse --git-dir > /dev/null 2>&1; then  # git's files; a copy without .git (bg.sh's): all of it
    git -C "$W" ls-files -z --cached --others --exclude-standard | (cd "$W" && tar --null -T - -cf -) | tar -xf - -C "$R/$1"
  else
    (cd "$W" && tar --exclude=./lease --exclude=./.gpu --exclude=./.git -cf - .) | tar -xf - -C "$R/$1"
  fi
}

study() {  # study DIR: the reduced grid's report there, with Snakemake's log kept (GRID's words as the shell
  # quotes them, its brackets not taken for file patterns)
  (cd "$R/$1" && set -f && eval python3 -m snakemake --cores 16 report ${GRID:+--config "$GRID"})
}

{ date -u; nproc; lscpu | grep -E 'Model name|NUMA|Thread|Socket'; nvidia-smi --query-gpu=name,memory.total,driver_version \
  --format=csv,noheader; python3 -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__)'
  git -C "$W" log -1 --format='commit %H %s' 2>/dev/null ||
    echo "commit: ${FMTBENCH_COMMIT:-not a git copy, and FMTBENCH_COMMIT not set}"
  } > "$OUTDIR/host.txt" 2>&1

# The host's timeline beside runs A and B (tools/host_timeline.py, on the last core, away from the CPU rows'; TIMELINE=0:
# none), related to the CPU rows' slow calls after each run.
if [ "${TIMELINE:-1}" = 1 ]; then
  python3 tools/host_timeline.py record --out "$OUTDIR/timeline.jsonl" --cores "$(( $(nproc) - 1 ))" &
  RECORDER=$!
  trap 'kill $RECORDER 2>/dev/null' EXIT
fi
relate() {  # relate RUN: the CPU rows' slow calls of that run against the timeline
  [ -f "$OUTDIR/timeline.jsonl" ] && python3 tools/host_timeline.py relate "$OUTDIR/timeline.jsonl" \
    "$R/$1/artifacts/results" --out "$OUTDIR/relate-$1.md" > /dev/null 2>&1
}

for s in $STEPS; do
  case $s in
  A)
    workspace runA && step runA study runA
    tar czf "$OUTDIR/run-a.tgz" -C "$R/runA" artifacts/results artifacts/logs report .snakemake/log 2>/dev/null
    python3 tools/breakdown.py "$R/runA" --log "$(ls -t "$R"/runA/.snakemake/log/*.log | head -1)" \
      --out "$OUTDIR/breakdown-run-a.md" > /dev/null 2>&1
    relate runA ;;
  B)
    rm -rf "$R/runB" && cp -a "$R/runA" "$R/runB" && rm -rf "$R"/runB/artifacts/results "$R"/runB/artifacts/logs \
      "$R"/runB/report "$R"/runB/.snakemake/log
    step runB study runB
    tar czf "$OUTDIR/run-b.tgz" -C "$R/runB" artifacts/results artifacts/logs report .snakemake/log 2>/dev/null
    python3 tools/breakdown.py "$R/runB" --log "$(ls -t "$R"/runB/.snakemake/log/*.log | head -1)" \
      --out "$OUTDIR/breakdown-run-b.md" > /dev/null 2>&1
    relate runB
    [ -n "${RECORDER:-}" ] && kill "$RECORDER" 2>/dev/null ;;
  anchors)
    step anchors python3 tools/ablation.py --workspace "$R/runA" --out "$OUTDIR/anchors" --rounds 0 \
      --anchors "$R/runA/artifacts/results" "$R/runB/artifacts/results" ;;
  probe)
    step probe python3 tools/host_probe.py --harness --seconds "${PROBE_SECONDS:-20}" --out "$OUTDIR/host_probe.jsonl" ;;
  nvjpeg)  # what nvJPEG keeps on the device by batch size and order (tools/nvjpeg_memory.py), on run A's images
    images=(); [ -d "$R/runA/artifacts/images" ] && images=(--images "$R/runA/artifacts/images")
    step nvjpeg python3 tools/nvjpeg_memory.py "${images[@]}" --out "$OUTDIR/nvjpeg_memory.jsonl" ;;
  ortload)  # what making an ONNX Runtime CUDA session adds, process after process (tools/ort_load_memory.py)
    step ortload python3 tools/ort_load_memory.py --model "$R/runA/artifacts/exports/onnx/fp32-any-224.onnx" \
      --out "$OUTDIR/ort_load_memory.jsonl" ;;
  spread)  # each CUDA model-alone process's device time by what shared the host (tools/process_spread.py)
    runs=(); for run in runA runB; do [ -d "$R/$run/artifacts/results" ] && runs+=("$R/$run/artifacts/results"); done
    step spread python3 tools/process_spread.py "${runs[@]}" --out "$OUTDIR/process-spread.md" ;;
  beside)  # a CUDA model-alone process quiet and beside a CPU row's load (tools/spin_beside_load.py, about 2 min)
    step beside python3 tools/spin_beside_load.py --out "$OUTDIR/spin_beside_load.jsonl" ;;
  tests)
    step gputests python3 -m pytest -m gpu -q -rs --durations=15 -p no:cacheprovider ${GPU_TESTS:-tests} ;;
  table)
    anchors=(); [ -f "$OUTDIR/anchors/ablation.jsonl" ] && anchors=(--anchors "$OUTDIR/anchors/ablation.jsonl")
    step table python3 tools/replicate.py "$R/runA/artifacts/results" "$R/runB/artifacts/results" "${anchors[@]}" \
      --out "$OUTDIR/replicate"
    python3 tools/one_process.py "$R/runA/artifacts/results" "$R/runB/artifacts/results" \
      --out "$OUTDIR/one-process.md" > /dev/null 2>&1 ;;
  *) echo "unknown step $s" | tee -a "$OUTDIR/times.txt" ;;
  esac
done
echo "done $(date -u +%H:%M:%S)" >> "$OUTDIR/times.txt"
