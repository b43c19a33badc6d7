#!/usr/bin/env bash
# PBS Pro / Torque: the same run as slurm-train.sh (Conv6 on CIFAR-10 unless MODEL / DATASET say
# otherwise), mpirun over the nodes of PBS_NODEFILE, checkpointed and rerunnable:
#  - a job that PBS reruns (node failure, preemption: `#PBS -r y`) resumes from the newest
#    checkpoint (--resume auto, same job id, same CKPT_DIR), on whatever number of ranks its new
#    allocation has (up to 16 = 128 / 8 chunks by default; the exact reduction makes that the same
#    run, Docs/reproducibility.md);
#  - PBS sends no warning before the walltime, so this script signals hidden-mpi itself
#    STOP_MARGIN_S (300) seconds before it (walltime from Torque's PBS_WALLTIME or PBS Pro's
#    `qstat -f`; STOP_AFTER_S=N overrides), hidden-mpi checkpoints and exits 75, and the job is
#    requeued: REQUEUE=qsub (default) submits this script again, to start after this job ends,
#    with the same variables and CKPT_DIR (saved to CKPT_DIR.job-env); REQUEUE=qrerun reruns the
#    same job (where users may: often operators only); REQUEUE=none leaves it to you.
# Submit from the repository root (variables through qsub -v):
#   qsub -v DATA=/path/to/cifar-10-batches-bin jobs/pbs-train.sh                     # one node, 16 ranks
#   qsub -l select=2:ncpus=16:mpiprocs=16 -v DATA=/data/cifar10,EXTRA_ARGS="--chunk 4",QSUB_ARGS="-l select=2:ncpus=16:mpiprocs=16" jobs/pbs-train.sh
#   qsub -l nodes=2:ppn=16 -v DATA=/data/cifar10 jobs/pbs-train.sh                  # Torque
# Variables: DATA, DATASET, MODEL, EPOCHS, RANKS (default: the lines of PBS_NODEFILE),
# THREADS_PER_RANK (default 1), CKPT_DIR (default runs/MODEL-DATASET-pbs-JOBID), METRICS,
# CHECKPOINT_EVERY, EXTRA_ARGS, MPIRUN_ARGS, HIDDEN_MPI_BIN (Docs/jobs.md), and REQUEUE,
# STOP_MARGIN_S, STOP_AFTER_S, QSUB_ARGS (the resource options a resubmission repeats). A bad
# value stops the job with one message and exit status 2 before mpirun starts.
#PBS -N hidden-mpi
#PBS -l select=1:ncpus=16:mpiprocs=16
#PBS -l walltime=04:00:00
#PBS -r y
#PBS -j oe
set -euo pipefail
cd "${PBS_O_WORKDIR:-.}"
# A resubmitted job gets its predecessor's settings from the file it saved.
if [ -n "${HIDDEN_MPI_JOB_ENV:-}" ]; then
    source "$HIDDEN_MPI_JOB_ENV"
fi
JOBS=${HIDDEN_MPI_JOBS:-$PWD/jobs}
source "$JOBS/job-config.sh"
source "$JOBS/requeue.sh"
job_config pbs "${1:-}"

REQUEUE=${REQUEUE:-qsub}
case $REQUEUE in qsub | qrerun | none) ;; *) job_fail "REQUEUE='$REQUEUE' is not one of qsub, qrerun, none" ;; esac
STOP_MARGIN_S=${STOP_MARGIN_S:-300}
job_is_count "$STOP_MARGIN_S" || job_fail "STOP_MARGIN_S='$STOP_MARGIN_S' is not a positive whole number of seconds"

# The job's walltime in seconds, where PBS says it (empty otherwise).
walltime_s() {
    local w=""
    if [ -n "${PBS_WALLTIME:-}" ]; then
        w=$PBS_WALLTIME
    elif [ -n "${PBS_JOBID:-}" ] && command -v qstat >/dev/null; then
        w=$(qstat -f "$PBS_JOBID" 2>/dev/null | awk -F= '/Resource_List.walltime/ { gsub(/ /, "", $2); print $2; exit }' || true)
    fi
    if [[ $w =~ ^[0-9]+$ ]]; then
        echo "$w"
    elif [[ $w =~ ^([0-9]+):([0-9]+):([0-9]+)$ ]]; then
        echo $((10#${BASH_REMATCH[1]} * 3600 + 10#${BASH_REMATCH[2]} * 60 + 10#${BASH_REMATCH[3]}))
    fi
}
STOP_AFTER_S_SET=${STOP_AFTER_S:-}    # as the submitter gave it: a resubmission repeats only that
if [ -z "${STOP_AFTER_S:-}" ]; then
    walltime=$(walltime_s)
    if [ -n "$walltime" ] && [ "$walltime" -gt "$STOP_MARGIN_S" ]; then
        STOP_AFTER_S=$((walltime - STOP_MARGIN_S))
    fi
fi
if [ -n "${STOP_AFTER_S:-}" ]; then
    job_is_count "$STOP_AFTER_S" || job_fail "STOP_AFTER_S='$STOP_AFTER_S' is not a positive whole number of seconds"
    echo "hidden-mpi job: checkpoint and requeue after $STOP_AFTER_S s (walltime less STOP_MARGIN_S)"
    export STOP_AFTER_S
else
    echo "hidden-mpi job: walltime unknown: no checkpoint before it (set STOP_AFTER_S); a rerun still resumes"
fi

# hidden-mpi exited 75 (checkpointed on the signal): continue in a new job, or rerun this one.
pbs_requeue() {
    if [ -z "${PBS_JOBID:-}" ]; then
        echo "not a PBS job (no PBS_JOBID): run the same command again to resume"
        return 0
    fi
    case $REQUEUE in
    qrerun) qrerun "$PBS_JOBID" ;;
    none) echo "REQUEUE=none: submit again with the same CKPT_DIR to continue" ;;
    qsub)
        local env_file name
        env_file=$(cd "$(dirname "$CKPT_DIR")" && pwd)/$(basename "$CKPT_DIR").job-env
        {
            echo "# Settings of PBS job ${PBS_JOBID:-?}, for the job that continues it (jobs/pbs-train.sh)."
            for name in $JOB_USER_VARS CKPT_DIR METRICS REQUEUE STOP_MARGIN_S QSUB_ARGS HIDDEN_MPI_JOBS; do
                if [ -n "${!name+set}" ]; then printf 'export %s=%q\n' "$name" "${!name}"; fi
            done
            if [ -n "$STOP_AFTER_S_SET" ]; then printf 'export STOP_AFTER_S=%q\n' "$STOP_AFTER_S_SET"; fi
        } | awk '!seen[$0]++' >"$env_file"
        local qsub_extra=()
        read -ra qsub_extra <<<"${QSUB_ARGS:-}"
        qsub -W "depend=afterany:$PBS_JOBID" ${qsub_extra[@]+"${qsub_extra[@]}"} \
            -v "HIDDEN_MPI_JOB_ENV=$env_file" "$JOBS/pbs-train.sh"
        ;;
    esac
}
REQUEUE_WITH=pbs_requeue

hostfile=()
if [ -n "${PBS_NODEFILE:-}" ]; then hostfile=(--hostfile "$PBS_NODEFILE"); fi
run_requeueable mpirun -np "$RANKS" ${hostfile[@]+"${hostfile[@]}"} "${BIND_ARGS[@]}" \
    ${MPIRUN_EXTRA[@]+"${MPIRUN_EXTRA[@]}"} "$BIN" "${TRAIN_ARGS[@]}"
