#ifndef EPISODIC_CNIFTI_H
#define EPISODIC_CNIFTI_H
// Placeholder; the Data issue defines the shim.
int cnifti_version(void);
#endif
