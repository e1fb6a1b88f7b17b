// Open MPI's predefined handles are macros over addresses of globals; Swift cannot import them,
// so each is exposed as a static inline function.
#ifndef EPISODIC_MPI_SHIM_H
#define EPISODIC_MPI_SHIM_H
#include <mpi.h>
#include <malloc.h>

static inline MPI_Comm shim_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm shim_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype shim_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype shim_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype shim_int(void) { return MPI_INT; }
static inline MPI_Datatype shim_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype shim_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype shim_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype shim_char(void) { return MPI_CHAR; }
static inline MPI_Op shim_sum(void) { return MPI_SUM; }
static inline MPI_Op shim_max(void) { return MPI_MAX; }
static inline MPI_Op shim_min(void) { return MPI_MIN; }
static inline MPI_Op shim_bxor(void) { return MPI_BXOR; }
static inline void *shim_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Request shim_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *shim_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Errhandler shim_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int shim_success(void) { return MPI_SUCCESS; }
static inline int shim_any_source(void) { return MPI_ANY_SOURCE; }
static inline int shim_any_tag(void) { return MPI_ANY_TAG; }
static inline int shim_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int shim_undefined(void) { return MPI_UNDEFINED; }
static inline int shim_status_source(const MPI_Status *s) { return s->MPI_SOURCE; }
static inline int shim_status_tag(const MPI_Status *s) { return s->MPI_TAG; }
static inline int shim_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
static inline MPI_Message shim_message_null(void) { return MPI_MESSAGE_NULL; }
// glibc's mallopt (its parameters are macros). Returns 1 on success.
static inline int shim_set_malloc_thresholds(int mmap_threshold, int trim_threshold) {
    return mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1;
}
#endif
