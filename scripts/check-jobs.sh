#!/usr/bin/env bash
# Checks the job scripts of jobs/ end to end on this machine, with the batch system faked: no
# Slurm or PBS is needed. A temporary folder first on PATH holds a fake `srun` (for --mpi=pmix it
# runs `mpirun -np N` with the rest of the command), `scontrol` (records `scontrol requeue`),
# `qsub`, `qrerun` and `qstat`; the scheduler's variables describe a one-node allocation of 2
# tasks x 1 core (SLURM_JOB_ID, SLURM_NTASKS, ..., PBS_JOBID, PBS_NODEFILE, PBS_O_WORKDIR, ...),
# and each script runs as the batch system runs it: a spooled copy, started from the submit
# folder (Slurm) or from a home folder (PBS). Training is fc on Fashion-MNIST, a few steps.
#
#   bash scripts/check-jobs.sh         # one PASS/FAIL line per check; exit 1 if any failed
#   CHECK_JOBS_KEEP=1 bash scripts/check-jobs.sh   # keep the temporary folder (logs) for a look
#
# Checked: `bash -n` of every jobs/*.sh; slurm-train.sh (mpirun), slurm-srun.sh (srun --mpi=pmix)
# and pbs-train.sh (Torque-style variables) exit 0, write a checkpoint and an epoch line in their
# metrics; SIGUSR1 to slurm-train.sh mid-run gives a checkpoint, exit 75 and `scontrol requeue`,
# and the requeued job resumes; pbs-train.sh (PBS Pro-style variables) stops itself before the
# walltime that `qstat -f` reports, resubmits itself with `qsub`, and that job resumes from the
# saved settings alone; fewer ranks than tasks on purpose runs, as do ranks of 2 BLAS threads
# (Slurm's cpus-per-task, Torque's PBS_NP counted in cores); bad values exit 2 with one message
# and launch nothing; the example hostfiles parse (the one-node one under mpirun).
# Not run: imagenet-resnet50.sh and scaling-sweep.sh (syntax only), anything across real nodes or
# under a real scheduler. Takes under a minute on 2 cores; removes its temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
started=$SECONDS

failures=0
pass() { echo "PASS $*"; }
fail() {
    echo "FAIL $1"
    if [ -n "${2:-}" ] && [ -f "$2" ]; then tail -n 25 "$2" | sed 's/^/    | /'; fi
    failures=$((failures + 1))
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-jobs.XXXXXX")
background=""
cleanup() {
    if [ -n "$background" ] && kill -0 "$background" 2>/dev/null; then
        kill -TERM "$background" 2>/dev/null || true
        wait "$background" 2>/dev/null || true
    fi
    if [ "${CHECK_JOBS_KEEP:-0}" = 1 ]; then echo "check-jobs: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# The release binary (another build may be replacing it: wait a little).
BIN=${HIDDEN_MPI_BIN:-$ROOT/.build/release/hidden-mpi}
for _ in $(seq 1 24); do [ -x "$BIN" ] && break; sleep 5; done
if [ ! -x "$BIN" ]; then
    echo "FAIL no hidden-mpi binary at $BIN (swift build -c release)"
    exit 1
fi
export HIDDEN_MPI_BIN=$BIN

# A clean environment: nothing of a real batch system or of an enclosing mpirun.
for name in $(compgen -e); do
    case $name in SLURM_* | SRUN_* | SBATCH_* | PBS_* | OMPI_* | PMIX_* | OPAL_* | HIDDEN_MPI_ALLOW_FEWER_RANKS) unset "$name" ;; esac
done
source scripts/env.sh
# The job must fit the faked allocation's slots, as on a cluster.
export OMPI_MCA_rmaps_base_oversubscribe=0

# ---- the fake batch system -------------------------------------------------------------------
mkdir -p "$tmp/bin" "$tmp/nolaunch" "$tmp/spool" "$tmp/home" "$tmp/data"
export FAKE_LOG=$tmp/scheduler.log
: >"$FAKE_LOG"

cat >"$tmp/bin/srun" <<'EOF'
#!/usr/bin/env bash
# Fake srun: `srun --mpi=pmix [-n N | --ntasks=N] [--opt=value ...] CMD...` runs
# `mpirun -np N CMD...` (N defaults to SLURM_NTASKS); refuses anything but --mpi=pmix.
set -euo pipefail
echo "srun $*" >>"$FAKE_LOG"
mpi="" n=${SLURM_NTASKS:?fake srun: no SLURM_NTASKS}
while [ $# -gt 0 ]; do
    case $1 in
    --mpi=*) mpi=${1#--mpi=} ;;
    -n | --ntasks) n=$2; shift ;;
    --ntasks=*) n=${1#--ntasks=} ;;
    -c | -N | --cpus-per-task | --nodes) shift ;;
    --*) ;;
    -*) echo "fake srun: use --option=value forms (got $1)" >&2; exit 1 ;;
    *) break ;;
    esac
    shift
done
if [ "$mpi" != pmix ]; then echo "fake srun: --mpi=pmix expected, got '$mpi'" >&2; exit 1; fi
export SLURM_STEP_NUM_TASKS=$n
exec mpirun -np "$n" "$@"
EOF
cat >"$tmp/bin/scontrol" <<'EOF'
#!/usr/bin/env bash
# Fake scontrol: records the call.
echo "scontrol $*" >>"$FAKE_LOG"
EOF
cat >"$tmp/bin/qsub" <<'EOF'
#!/usr/bin/env bash
# Fake qsub: records the call, prints a job id.
echo "qsub $*" >>"$FAKE_LOG"
echo "81.fakepbs"
EOF
cat >"$tmp/bin/qrerun" <<'EOF'
#!/usr/bin/env bash
# Fake qrerun: records the call.
echo "qrerun $*" >>"$FAKE_LOG"
EOF
cat >"$tmp/bin/qstat" <<'EOF'
#!/usr/bin/env bash
# Fake qstat -f JOBID: PBS Pro's attribute lines, the walltime from FAKE_WALLTIME.
echo "Job Id: ${2:-?}"
echo "    Job_Name = hidden-mpi"
echo "    Resource_List.ncpus = 2"
echo "    Resource_List.walltime = ${FAKE_WALLTIME:-04:00:00}"
EOF
# For the bad-value checks: a launch is a failure.
for launcher in mpirun srun; do
    printf '#!/usr/bin/env bash\necho "%s $*" >>"%s"\nexit 99\n' "$launcher" "$tmp/launched" >"$tmp/nolaunch/$launcher"
done
chmod +x "$tmp/bin/"* "$tmp/nolaunch/"*
FAKE_PATH=$tmp/bin:$PATH

host=$(hostname)
printf '%s\n%s\n' "$host" "$host" >"$tmp/nodefile"
SLURM_VARS=(SLURM_NTASKS=2 SLURM_NPROCS=2 SLURM_JOB_NUM_NODES=1 SLURM_NNODES=1
    SLURM_NODELIST="$host" SLURM_JOB_NODELIST="$host" SLURM_TASKS_PER_NODE=2 SLURM_NTASKS_PER_NODE=2
    SLURM_CPUS_PER_TASK=1 SLURM_JOB_CPUS_PER_NODE=2 SLURM_CPUS_ON_NODE=2 SLURM_SUBMIT_DIR="$ROOT"
    SLURM_JOB_NAME=hidden-mpi SLURM_JOB_PARTITION=fake)
PBS_VARS=(PBS_NODEFILE="$tmp/nodefile" PBS_O_WORKDIR="$ROOT" PBS_ENVIRONMENT=PBS_BATCH
    PBS_JOBNAME=hidden-mpi PBS_O_HOME="$tmp/home" PBS_QUEUE=fake)
TORQUE_VARS=(PBS_NP=2 PBS_NUM_NODES=1 PBS_NUM_PPN=2)
PBSPRO_VARS=(NCPUS=2)
# fc on Fashion-MNIST, 5 steps of one epoch: seconds per run.
QUICK=(MODEL=fc DATASET=fashion-mnist EPOCHS=1 EXTRA_ARGS="--max-steps 5 --progress 0")
# Four epochs (469 steps each, 1 to 4 s on 2 ranks of the machines seen): time to stop the run
# in the middle, and to count its epoch lines after the resume.
LONG_EPOCHS=4
LONG=(MODEL=fc DATASET=fashion-mnist EPOCHS=$LONG_EPOCHS EXTRA_ARGS="--progress 0")
# Eight epochs (8 s and more) for a stop at a fixed time (4 s) after the start.
LONGER=(MODEL=fc DATASET=fashion-mnist EPOCHS=8 EXTRA_ARGS="--progress 0")

# spool SCRIPT NAME: a copy of jobs/SCRIPT where the batch system keeps it; prints its path.
spool() {
    mkdir -p "$tmp/spool/$2"
    cp "jobs/$1" "$tmp/spool/$2/script"
    echo "$tmp/spool/$2/script"
}

# ---- checks ----------------------------------------------------------------------------------
# A run's outcome: exit status, a checkpoint in CKPT, an epoch line in METRICS.
check_run() { # LABEL STATUS LOG CKPT METRICS
    local label=$1 status=$2 log=$3 ckpt=$4 metrics=$5
    if [ "$status" -eq 0 ]; then pass "$label: exit 0"; else fail "$label: exit $status, expected 0" "$log"; fi
    if compgen -G "$ckpt/ckpt-*.safetensors" >/dev/null; then
        pass "$label: checkpoint written ($(basename "$(ls "$ckpt"/ckpt-*.safetensors | tail -n 1)"))"
    else
        fail "$label: no checkpoint in $ckpt" "$log"
    fi
    if [ -f "$metrics" ] && grep -q '"kind" *: *"epoch"' "$metrics"; then
        pass "$label: metrics file has an epoch line"
    else
        fail "$label: no epoch line in $metrics" "$log"
    fi
}

# A bad value: exit 2, one message on stderr, nothing launched.
check_bad() { # LABEL SCRIPT EXPECTED-PHRASE VAR=VALUE...
    local label=$1 script=$2 phrase=$3 status=0
    shift 3
    rm -f "$tmp/launched"
    (cd "$ROOT" && env PATH="$tmp/nolaunch:$FAKE_PATH" "$@" bash "$script" >"$tmp/bad.out" 2>"$tmp/bad.err") || status=$?
    local lines
    lines=$(grep -c . "$tmp/bad.err" || true)
    if [ "$status" -eq 2 ] && [ "$lines" -eq 1 ] && grep -q -- "$phrase" "$tmp/bad.err" && [ ! -e "$tmp/launched" ]; then
        pass "$label: exit 2, nothing launched: $(cat "$tmp/bad.err")"
    else
        cat "$tmp/bad.out" "$tmp/bad.err" >"$tmp/bad.log" 2>/dev/null || true
        [ -e "$tmp/launched" ] && echo "launched: $(cat "$tmp/launched")" >>"$tmp/bad.log"
        fail "$label: exit $status with $lines stderr line(s), expected 2 and one message containing '$phrase'" "$tmp/bad.log"
    fi
}

# Waits up to 60 s for PHRASE in LOG while PID runs.
wait_for() { # LOG PHRASE PID
    local i
    for i in $(seq 1 600); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# 1. Syntax of every job script.
for script in jobs/*.sh; do
    if out=$(bash -n "$script" 2>&1); then pass "bash -n $script"; else echo "$out" >"$tmp/syntax.log"; fail "bash -n $script" "$tmp/syntax.log"; fi
done

# 2. Slurm, mpirun inside the allocation.
script=$(spool slurm-train.sh job4201)
status=0
(cd "$ROOT" && env PATH="$FAKE_PATH" "${SLURM_VARS[@]}" SLURM_JOB_ID=4201 SLURM_JOBID=4201 "${QUICK[@]}" \
    CKPT_DIR="$tmp/slurm" bash "$script" >"$tmp/slurm.log" 2>&1) || status=$?
check_run "slurm-train.sh (mpirun, 2 tasks)" "$status" "$tmp/slurm.log" "$tmp/slurm" "$tmp/slurm.jsonl"

# 3. Slurm, srun --mpi=pmix.
script=$(spool slurm-srun.sh job4202)
status=0
(cd "$ROOT" && env PATH="$FAKE_PATH" "${SLURM_VARS[@]}" SLURM_JOB_ID=4202 SLURM_JOBID=4202 "${QUICK[@]}" \
    CKPT_DIR="$tmp/srun" bash "$script" >"$tmp/srun.log" 2>&1) || status=$?
check_run "slurm-srun.sh (srun --mpi=pmix, 2 tasks)" "$status" "$tmp/srun.log" "$tmp/srun" "$tmp/srun.jsonl"
if grep -q -- "^srun --mpi=pmix --ntasks=2 " "$FAKE_LOG"; then
    pass "slurm-srun.sh: launched with srun --mpi=pmix --ntasks=2"
else
    fail "slurm-srun.sh: no 'srun --mpi=pmix --ntasks=2' call" "$FAKE_LOG"
fi

# 4. PBS (Torque-style variables: PBS_NP), started from a home folder as PBS does.
script=$(spool pbs-train.sh 77.fakepbs)
status=0
(cd "$tmp/home" && env PATH="$FAKE_PATH" "${PBS_VARS[@]}" "${TORQUE_VARS[@]}" PBS_JOBID=77.fakepbs "${QUICK[@]}" \
    CKPT_DIR="$tmp/pbs" bash "$script" >"$tmp/pbs.log" 2>&1) || status=$?
check_run "pbs-train.sh (Torque variables, 2 cores)" "$status" "$tmp/pbs.log" "$tmp/pbs" "$tmp/pbs.jsonl"

# 5. Fewer ranks than the allocation's tasks, on purpose: the script tells hidden-mpi so.
script=$(spool slurm-train.sh job4203)
status=0
(cd "$ROOT" && env PATH="$FAKE_PATH" "${SLURM_VARS[@]}" SLURM_JOB_ID=4203 SLURM_JOBID=4203 "${QUICK[@]}" RANKS=1 \
    CKPT_DIR="$tmp/fewer" bash "$script" >"$tmp/fewer.log" 2>&1) || status=$?
if [ "$status" -eq 0 ] && grep -q "HIDDEN_MPI_ALLOW_FEWER_RANKS=1" "$tmp/fewer.log" && grep -q '"world_size" *: *1' "$tmp/fewer.jsonl"; then
    pass "slurm-train.sh RANKS=1 of SLURM_NTASKS=2: runs 1 rank (HIDDEN_MPI_ALLOW_FEWER_RANKS=1)"
else
    fail "slurm-train.sh RANKS=1 of SLURM_NTASKS=2: exit $status" "$tmp/fewer.log"
fi

# 5b. Threads per rank: one task of 2 CPUs on Slurm (the default THREADS_PER_RANK is
#     SLURM_CPUS_PER_TASK), and 1 rank x 2 threads filling Torque's PBS_NP=2 (RankAgreement.swift
#     counts PBS_NP in cores: no HIDDEN_MPI_ALLOW_FEWER_RANKS needed).
script=$(spool slurm-train.sh job4207)
status=0
(cd "$ROOT" && env PATH="$FAKE_PATH" "${SLURM_VARS[@]}" SLURM_JOB_ID=4207 SLURM_JOBID=4207 SLURM_NTASKS=1 SLURM_NPROCS=1 \
    SLURM_TASKS_PER_NODE=1 SLURM_NTASKS_PER_NODE=1 SLURM_CPUS_PER_TASK=2 "${QUICK[@]}" \
    CKPT_DIR="$tmp/threads" bash "$script" >"$tmp/threads.log" 2>&1) || status=$?
if [ "$status" -eq 0 ] && grep -q "1 rank(s) x 2 BLAS thread(s)" "$tmp/threads.log"; then
    pass "slurm-train.sh 1 task x SLURM_CPUS_PER_TASK=2: 1 rank x 2 BLAS threads (--map-by slot:PE=2)"
else
    fail "slurm-train.sh 1 task x SLURM_CPUS_PER_TASK=2: exit $status or not 1 rank x 2 threads" "$tmp/threads.log"
fi
script=$(spool pbs-train.sh 79.fakepbs)
status=0
(cd "$tmp/home" && env PATH="$FAKE_PATH" "${PBS_VARS[@]}" "${TORQUE_VARS[@]}" PBS_JOBID=79.fakepbs "${QUICK[@]}" \
    RANKS=1 THREADS_PER_RANK=2 CKPT_DIR="$tmp/pbs-threads" bash "$script" >"$tmp/pbs-threads.log" 2>&1) || status=$?
if [ "$status" -eq 0 ] && grep -q "1 rank(s) x 2 BLAS thread(s)" "$tmp/pbs-threads.log" \
    && ! grep -q "HIDDEN_MPI_ALLOW_FEWER_RANKS" "$tmp/pbs-threads.log"; then
    pass "pbs-train.sh RANKS=1 THREADS_PER_RANK=2 on PBS_NP=2: runs, hidden-mpi's PBS_NP rule satisfied"
else
    fail "pbs-train.sh RANKS=1 THREADS_PER_RANK=2 on PBS_NP=2: exit $status" "$tmp/pbs-threads.log"
fi

# 6. Slurm's warning signal: SIGUSR1 to the batch shell mid-run -> checkpoint, exit 75,
#    `scontrol requeue`; the requeued job (same id, same variables) resumes.
script=$(spool slurm-train.sh job4204)
run_usr1() {
    cd "$ROOT" && exec env PATH="$FAKE_PATH" "${SLURM_VARS[@]}" SLURM_JOB_ID=4204 SLURM_JOBID=4204 "${LONG[@]}" \
        CKPT_DIR="$tmp/usr1" bash "$script"
}
(run_usr1 >"$tmp/usr1.log" 2>&1) &
background=$!
status=0
if wait_for "$tmp/usr1.log" "starting a fresh run" "$background"; then
    sleep 0.5
    kill -USR1 "$background"
fi
wait "$background" || status=$?
background=""
if [ "$status" -eq 75 ]; then pass "slurm-train.sh SIGUSR1 mid-run: exit 75"; else fail "slurm-train.sh SIGUSR1 mid-run: exit $status, expected 75" "$tmp/usr1.log"; fi
if grep -q "stopped by signal" "$tmp/usr1.log" && compgen -G "$tmp/usr1/ckpt-*.safetensors" >/dev/null \
    && grep -q '"kind" *: *"stopped"' "$tmp/usr1.jsonl"; then
    pass "slurm-train.sh SIGUSR1 mid-run: checkpoint written ($(basename "$(ls "$tmp"/usr1/ckpt-*.safetensors | tail -n 1)"))"
else
    fail "slurm-train.sh SIGUSR1 mid-run: no checkpoint of the stop" "$tmp/usr1.log"
fi
if grep -qx "scontrol requeue 4204" "$FAKE_LOG"; then
    pass "slurm-train.sh SIGUSR1 mid-run: scontrol requeue 4204 called"
else
    fail "slurm-train.sh SIGUSR1 mid-run: no 'scontrol requeue 4204'" "$FAKE_LOG"
fi
status=0
(run_usr1 >"$tmp/usr1-requeued.log" 2>&1) || status=$?
if [ "$status" -eq 0 ] && grep -q "resuming from $tmp/usr1/ckpt-" "$tmp/usr1-requeued.log" \
    && [ "$(grep -c '"kind" *: *"epoch"' "$tmp/usr1.jsonl")" -eq "$LONG_EPOCHS" ]; then
    pass "slurm-train.sh requeued: resumed ($(grep -o 'resuming from [^ ]*' "$tmp/usr1-requeued.log" | sed "s|$tmp/||") ...), all $LONG_EPOCHS epochs finished once, exit 0"
else
    fail "slurm-train.sh requeued: exit $status, no resume or no epoch line" "$tmp/usr1-requeued.log"
fi

# 7. PBS (PBS Pro-style variables: NCPUS, walltime from qstat -f): the script stops itself
#    before the walltime, resubmits itself with qsub, and the new job resumes from the saved
#    settings alone.
script=$(spool pbs-train.sh 80.fakepbs)
status=0
(cd "$tmp/home" && env PATH="$FAKE_PATH" "${PBS_VARS[@]}" "${PBSPRO_VARS[@]}" PBS_JOBID=80.fakepbs "${LONGER[@]}" \
    FAKE_WALLTIME=00:05:04 STOP_MARGIN_S=300 CKPT_DIR="$tmp/pbs-requeue" \
    bash "$script" >"$tmp/pbs-requeue.log" 2>&1) || status=$?
if [ "$status" -eq 75 ] && grep -q "stopped by signal" "$tmp/pbs-requeue.log" \
    && compgen -G "$tmp/pbs-requeue/ckpt-*.safetensors" >/dev/null; then
    pass "pbs-train.sh walltime 00:05:04 less 300 s: stopped itself after 4 s, checkpoint written, exit 75"
else
    fail "pbs-train.sh walltime stop: exit $status, expected 75 and a checkpoint" "$tmp/pbs-requeue.log"
fi
qsub_line=$(grep "^qsub " "$FAKE_LOG" || true)
env_file=$(sed -n 's/.*HIDDEN_MPI_JOB_ENV=\([^ ]*\).*/\1/p' <<<"$qsub_line")
if grep -q -- "-W depend=afterany:80.fakepbs" <<<"$qsub_line" && grep -q "jobs/pbs-train.sh$" <<<"$qsub_line" \
    && [ -f "$env_file" ] && grep -q "^export CKPT_DIR=$tmp/pbs-requeue$" "$env_file"; then
    pass "pbs-train.sh resubmitted: qsub -W depend=afterany:80.fakepbs -v HIDDEN_MPI_JOB_ENV=... jobs/pbs-train.sh"
else
    echo "$qsub_line" >"$tmp/qsub.log"
    fail "pbs-train.sh resubmitted: no matching qsub call or settings file" "$tmp/qsub.log"
fi
script=$(spool pbs-train.sh 81.fakepbs)
status=0
(cd "$tmp/home" && env PATH="$FAKE_PATH" "${PBS_VARS[@]}" "${PBSPRO_VARS[@]}" PBS_JOBID=81.fakepbs \
    HIDDEN_MPI_JOB_ENV="$env_file" bash "$script" >"$tmp/pbs-resumed.log" 2>&1) || status=$?
if [ "$status" -eq 0 ] && grep -q "resuming from $tmp/pbs-requeue/ckpt-" "$tmp/pbs-resumed.log" \
    && grep '"kind" *: *"epoch"' "$tmp/pbs-requeue.jsonl" | grep -q '"epoch" *: *2[,}]'; then
    pass "pbs-train.sh resubmitted job 81: resumed ($(grep -o 'resuming from [^ ]*' "$tmp/pbs-resumed.log" | sed "s|$tmp/||") ...), epoch 2 finished, exit 0"
else
    fail "pbs-train.sh resubmitted job 81: exit $status, no resume or no epoch-2 line" "$tmp/pbs-resumed.log"
fi

# 8. Bad values: exit 2, one message, nothing launched.
script=$(spool slurm-train.sh job4205)
SL=("${SLURM_VARS[@]}" SLURM_JOB_ID=4205 SLURM_JOBID=4205 "${QUICK[@]}" CKPT_DIR="$tmp/bad")
check_bad "slurm-train.sh RANKS=abc" "$script" "RANKS='abc' is not a positive whole number" "${SL[@]}" RANKS=abc
check_bad "slurm-train.sh DATA=/nonexistent" "$script" "DATA=/nonexistent is not a folder" "${SL[@]}" DATASET=cifar10 DATA=/nonexistent
check_bad "slurm-train.sh RANKS=3 of 2 tasks" "$script" "more than the allocation's 2 task slots" "${SL[@]}" RANKS=3
check_bad "slurm-train.sh 2 ranks x 2 threads on 2 nodes x 1 core" "$script" "is more than the allocation's 2 cores" \
    "${SL[@]}" SLURM_JOB_NUM_NODES=2 SLURM_JOB_CPUS_PER_NODE="1(x2)" RANKS=2 THREADS_PER_RANK=2
script=$(spool slurm-srun.sh job4206)
check_bad "slurm-srun.sh EPOCHS=0" "$script" "EPOCHS='0'" "${SL[@]}" EPOCHS=0
script=$(spool pbs-train.sh 82.fakepbs)
check_bad "pbs-train.sh THREADS_PER_RANK=x" "$script" "THREADS_PER_RANK='x'" \
    "${PBS_VARS[@]}" "${TORQUE_VARS[@]}" PBS_JOBID=82.fakepbs "${QUICK[@]}" CKPT_DIR="$tmp/bad" THREADS_PER_RANK=x
check_bad "pbs-train.sh 2 ranks x 2 threads on PBS_NP=2" "$script" "is more than the allocation's 2 cores" \
    "${PBS_VARS[@]}" "${TORQUE_VARS[@]}" PBS_JOBID=82.fakepbs "${QUICK[@]}" CKPT_DIR="$tmp/bad" THREADS_PER_RANK=2

# 9. The example hostfiles: every line a comment or `NAME slots=N`; the one-node example, its
#    name replaced by this machine's, is accepted by mpirun.
for hostfile in hostfiles/*.example; do
    if grep -vE '^[[:space:]]*(#.*)?$' "$hostfile" | grep -qvE '^[A-Za-z0-9._-]+ slots=[0-9]+$'; then
        fail "$hostfile: a line is neither a comment nor 'NAME slots=N'" "$hostfile"
    else
        pass "$hostfile: $(grep -cE '^[A-Za-z0-9._-]+ slots=' "$hostfile") node line(s) 'NAME slots=N'"
    fi
done
sed "s/^node01 /$host /" hostfiles/one-node-16.example >"$tmp/one-node"
if mpirun --hostfile "$tmp/one-node" -np 2 --bind-to core true >"$tmp/hostfile.log" 2>&1; then
    pass "hostfiles/one-node-16.example (node01 -> $host): mpirun -np 2 --hostfile runs"
else
    fail "hostfiles/one-node-16.example: mpirun -np 2 --hostfile failed" "$tmp/hostfile.log"
fi

# 10. A sweep as a Slurm job array (slurm-sweep.sh): tasks 1 and 0 of a 2-point synthetic sweep
#     each run their point with the task's 2 ranks and append their row to the shared CSV; a
#     script started outside an array stops with exit status 2.
SWEEP=(--name arr --models fc --k 0.3,0.5 --epochs 1 --dataset synthetic --runs "$tmp/sweep-runs" --csv "$tmp/sweep.csv"
       -- --input 1x8x8 --classes 4 --train-size 64 --test-size 16 --batch-size 16 --progress 0)
status=0
for task in 1 0; do
    script=$(spool slurm-sweep.sh "job4301_$task")
    (cd "$ROOT" && env PATH="$FAKE_PATH" "${SLURM_VARS[@]}" SLURM_JOB_ID=430$task SLURM_ARRAY_JOB_ID=4301 SLURM_ARRAY_TASK_ID=$task \
        HIDDEN_MPI_JOBS="$ROOT/jobs" bash "$script" "${SWEEP[@]}" >>"$tmp/sweep.log" 2>&1) || status=$?
done
if [ "$status" -eq 0 ] && [ "$(wc -l <"$tmp/sweep.csv")" -eq 3 ] && grep -q "fc-w1-edge-popup-k0.3-" "$tmp/sweep.csv" \
    && grep -q "fc-w1-edge-popup-k0.5-" "$tmp/sweep.csv" && grep -q '"world_size" *: *2' "$tmp"/sweep-runs/*k0.3*.jsonl; then
    pass "slurm-sweep.sh: array tasks 1 and 0 each ran their point on 2 ranks, 2 rows in the shared CSV"
else
    fail "slurm-sweep.sh array tasks: exit $status, rows: $(($(wc -l <"$tmp/sweep.csv" 2>/dev/null || echo 1) - 1))" "$tmp/sweep.log"
fi
script=$(spool slurm-sweep.sh job4302)
status=0
(cd "$ROOT" && env PATH="$FAKE_PATH" "${SLURM_VARS[@]}" SLURM_JOB_ID=4302 bash "$script" "${SWEEP[@]}" >"$tmp/sweep-bad.log" 2>&1) || status=$?
if [ "$status" -eq 2 ] && grep -q "not an array task" "$tmp/sweep-bad.log"; then
    pass "slurm-sweep.sh outside an array: exit 2, says to submit with --array"
else
    fail "slurm-sweep.sh outside an array: exit $status" "$tmp/sweep-bad.log"
fi

echo "check-jobs: $failures failure(s), $((SECONDS - started)) s"
[ "$failures" -eq 0 ]
