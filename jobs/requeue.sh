# Sourced by the job scripts: `run_requeueable CMD...` runs CMD (mpirun or srun ... hidden-mpi
# train ...) in the background and passes on the SIGUSR1 that `#SBATCH --signal=B:USR1@T` sends
# to the batch shell before the time limit (hidden-mpi then checkpoints at the next step and every
# rank exits with status 75). When CMD exits 75 the job is requeued with the function named by
# REQUEUE_WITH (default slurm_requeue: `scontrol requeue $SLURM_JOB_ID`; pbs-train.sh sets its
# own). STOP_AFTER_S=N sends that signal itself after N seconds, for batch systems without a
# warning signal (PBS). Exits with CMD's status. Safe under `set -euo pipefail` and under `set -u`.

slurm_requeue() {
    if [ -z "${SLURM_JOB_ID:-}" ]; then
        echo "not a Slurm job (no SLURM_JOB_ID): run the same command again to resume"
        return 0
    fi
    scontrol requeue "$SLURM_JOB_ID"
}

run_requeueable() {
    local status=0 timer=""
    "$@" &
    _requeue_pid=$!
    _requeue_signalled=0
    trap 'echo "time limit near: asking hidden-mpi to checkpoint"; _requeue_signalled=1; kill -USR1 "$_requeue_pid" 2>/dev/null || true' USR1
    if [ -n "${STOP_AFTER_S:-}" ]; then
        # The timer's own sleep is ended with it, so that nothing outlives the job.
        (
            trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
            sleep "$STOP_AFTER_S" &
            sleeper=$!
            wait "$sleeper"
            kill -USR1 $$
        ) &
        timer=$!
    fi
    wait "$_requeue_pid" || status=$?
    # A trapped signal interrupts `wait` (status 128 + 10) while CMD runs on: wait again for its
    # own status, as often as signals come.
    while [ "$status" -gt 128 ] && kill -0 "$_requeue_pid" 2>/dev/null; do
        status=0
        wait "$_requeue_pid" || status=$?
    done
    trap - USR1
    if [ -n "$timer" ]; then
        kill "$timer" 2>/dev/null || true
        wait "$timer" 2>/dev/null || true
    fi
    if [ "$status" -eq 75 ]; then
        echo "checkpointed; requeueing"
        "${REQUEUE_WITH:-slurm_requeue}" || echo "requeue failed (status $?): resubmit the job by hand; it resumes from its checkpoint" >&2
    fi
    exit "$status"
}
