// Open MPI's handles are macros over globals, which Swift cannot import:
// these wrappers hand them over. MPICH needs the same shim.
#include <mpi.h>

static inline MPI_Comm cmpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype cmpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype cmpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype cmpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype cmpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op cmpi_sum(void) { return MPI_SUM; }
static inline MPI_Op cmpi_max(void) { return MPI_MAX; }
static inline MPI_Op cmpi_min(void) { return MPI_MIN; }
static inline void *cmpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Request cmpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *cmpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *cmpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline MPI_Errhandler cmpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int cmpi_success(void) { return MPI_SUCCESS; }

// Persistent allreduce (MPI-4 MPI_Allreduce_init; Open MPI 4.x ships it as MPIX_Allreduce_init
// in its pcollreq extension): the schedule is built once, each step only restarts it, so the
// step loop allocates nothing inside MPI either. Returns MPI_ERR_OTHER where neither exists;
// the caller then falls back to MPI_Iallreduce.
#if defined(OPEN_MPI) && OPEN_MPI
#include <mpi-ext.h>
#endif
static inline int cmpi_allreduce_init(void *buf, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm, MPI_Request *req) {
#if defined(OMPI_HAVE_MPI_EXT_PCOLLREQ) && OMPI_HAVE_MPI_EXT_PCOLLREQ
    return MPIX_Allreduce_init(MPI_IN_PLACE, buf, count, type, op, comm, MPI_INFO_NULL, req);
#elif MPI_VERSION >= 4
    return MPI_Allreduce_init(MPI_IN_PLACE, buf, count, type, op, comm, MPI_INFO_NULL, req);
#else
    (void)buf; (void)count; (void)type; (void)op; (void)comm; (void)req;
    return MPI_ERR_OTHER;
#endif
}
