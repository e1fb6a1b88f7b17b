// OpenBLAS's cblas.h also declares openblas_get_corename / openblas_set_num_threads / openblas_get_num_threads.
#ifndef EPISODIC_CBLAS_SHIM_H
#define EPISODIC_CBLAS_SHIM_H
#include <cblas.h>
#endif
