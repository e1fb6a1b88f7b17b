#include "cnifti.h"
#include <nifti1_io.h>
int cnifti_version(void) { return 1; }
